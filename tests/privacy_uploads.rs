//! Training uploads against a real HTTP server on the loopback address:
//! nothing without consent, the documented content with it, revoking stops
//! an upload in flight and empties the queue, failures are retried with
//! backoff, and a withdrawal made on disk (the admin CLI) is respected.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backgrounderase::paths::AppDirs;
use backgrounderase::privacy::Privacy;
use backgrounderase::privacy::store::{ItemKind, SystemClock};
use backgrounderase::privacy::uploads::{
    Backoff, ConsentOnDisk, Endpoint, FIELDS, TrainingSample, Uploader, enqueue,
};
use common::fixture;
use common::loopback::{Behaviour, LoopbackServer, multipart};
use image::{GrayImage, RgbaImage};

fn photo(name: &str) -> RgbaImage {
    image::open(fixture(name)).unwrap().to_rgba8()
}

/// A mask with a soft gradient, like a model's.
fn mask_for(image: &RgbaImage) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    })
}

/// Noise does not compress: a body large enough to stay in flight.
fn noise(side: u32) -> RgbaImage {
    let mut state = 0x2545_f491_u32;
    RgbaImage::from_fn(side, side, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        image::Rgba([next(), next(), next(), 255])
    })
}

fn always(value: bool) -> ConsentOnDisk {
    Arc::new(move || value)
}

fn quick_backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: 5,
    }
}

fn open_privacy(home: &std::path::Path) -> Privacy {
    Privacy::open(&AppDirs::under(home), Arc::new(SystemClock)).unwrap()
}

fn start_uploader(privacy: &Privacy, server: &LoopbackServer, on_disk: ConsentOnDisk) -> Uploader {
    Uploader::spawn(
        privacy.store.clone(),
        privacy.gate(),
        on_disk,
        Ok(Endpoint::parse(&server.url).unwrap()),
        quick_backoff(),
        Arc::new(|| {}),
    )
    .unwrap()
}

#[test]
fn without_consent_nothing_is_queued_and_no_connection_is_made() {
    let server = LoopbackServer::start(Behaviour::default());
    let home = tempfile::tempdir().unwrap();
    let privacy = open_privacy(home.path());
    assert!(!privacy.opted_in());
    let uploader = start_uploader(&privacy, &server, privacy.consent_on_disk());
    for name in [
        "photos/coffee.jpg",
        "photos/chelsea.jpg",
        "photos/astronaut.jpg",
    ] {
        let image = photo(name);
        let mask = mask_for(&image);
        let sample = TrainingSample {
            original: &image,
            mask: &mask,
            model_id: "isnet-imgly-medium",
        };
        let queued = enqueue(
            &privacy.store,
            &privacy.gate(),
            &privacy.consent_on_disk(),
            name,
            &sample,
        )
        .unwrap();
        assert!(queued.is_none(), "queued without consent");
    }
    // Even a sample left in the queue (say, by an older version) is not sent.
    privacy
        .store
        .put(ItemKind::UploadQueue, "left over", b"--x\r\n")
        .unwrap();
    uploader.kick();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.connections(), 0, "a connection was opened");
    assert_eq!(uploader.state().sent, 0);
}

#[test]
fn with_consent_samples_arrive_with_exactly_the_documented_content() {
    let server = LoopbackServer::start(Behaviour::default());
    let home = tempfile::tempdir().unwrap();
    let mut privacy = open_privacy(home.path());
    privacy.set_opted_in(true).unwrap();
    let uploader = start_uploader(&privacy, &server, privacy.consent_on_disk());
    let names = [
        "photos/coffee.jpg",
        "photos/chelsea.jpg",
        "photos/astronaut.jpg",
    ];
    let mut sent = Vec::new();
    for name in names {
        let image = photo(name);
        let mask = mask_for(&image);
        let sample = TrainingSample {
            original: &image,
            mask: &mask,
            model_id: "isnet-imgly-medium",
        };
        enqueue(
            &privacy.store,
            &privacy.gate(),
            &privacy.consent_on_disk(),
            name,
            &sample,
        )
        .unwrap()
        .expect("queued with consent");
        sent.push((image, mask));
    }
    uploader.kick();
    let requests = server.wait_for_complete(3, Duration::from_secs(30));
    assert_eq!(requests.len(), 3);
    for (request, (image, mask)) in requests.iter().zip(&sent) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/samples");
        // Nothing about the user or machine in the headers.
        for (name, value) in &request.headers {
            assert!(
                [
                    "host",
                    "user-agent",
                    "content-type",
                    "content-length",
                    "accept",
                    "accept-encoding"
                ]
                .contains(&name.as_str()),
                "unexpected header {name}: {value}"
            );
        }
        assert_eq!(request.header("user-agent"), Some("BackgroundErase"));
        let parts = multipart(request.header("content-type").unwrap(), &request.body);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, FIELDS, "exactly model, original and mask");
        assert_eq!(parts[0].bytes, b"isnet-imgly-medium");
        assert_eq!(parts[1].filename.as_deref(), Some("original.png"));
        assert_eq!(parts[2].filename.as_deref(), Some("mask.png"));
        // The pixels, not the file: no EXIF, no name, no path.
        let original =
            image::load_from_memory_with_format(&parts[1].bytes, image::ImageFormat::Png)
                .unwrap()
                .to_rgba8();
        assert_eq!(&original, image);
        let got_mask = image::load_from_memory(&parts[2].bytes).unwrap().to_luma8();
        assert_eq!(&got_mask, mask);
    }
    // Sent samples leave the queue; what was sent is listed (in the store).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while privacy.queued_uploads() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(privacy.queued_uploads(), 0);
    let sent_log = privacy.store.list_kind(ItemKind::Log);
    assert_eq!(sent_log.len(), 3);
    assert!(sent_log.iter().all(|i| i.label.starts_with("sent photos/")));
    assert_eq!(uploader.state().sent, 3);
}

#[test]
fn revoking_mid_queue_stops_the_upload_in_flight_and_empties_the_queue() {
    // The server waits before reading each body, so the first upload is
    // still streaming when consent is withdrawn.
    let server = LoopbackServer::start(Behaviour {
        body_delay: Duration::from_millis(1500),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut privacy = open_privacy(home.path());
    privacy.set_opted_in(true).unwrap();
    let uploader = start_uploader(&privacy, &server, privacy.consent_on_disk());
    for n in 0..3 {
        // ~16 MB each: more than the loopback socket buffers hold.
        let image = noise(2000);
        let mask = mask_for(&image);
        let sample = TrainingSample {
            original: &image,
            mask: &mask,
            model_id: "m",
        };
        enqueue(
            &privacy.store,
            &privacy.gate(),
            &privacy.consent_on_disk(),
            &format!("noise-{n}"),
            &sample,
        )
        .unwrap()
        .unwrap();
    }
    uploader.kick();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(10));
    }
    privacy.set_opted_in(false).unwrap();
    assert_eq!(privacy.queued_uploads(), 0, "revoking empties the queue");
    std::thread::sleep(Duration::from_secs(4));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "no request after revoking");
    assert!(
        !requests[0].complete,
        "the upload in flight was cancelled, not finished"
    );
    assert_eq!(uploader.state().sent, 0);
    assert!(
        privacy.store.list_kind(ItemKind::Log).is_empty(),
        "nothing recorded as sent"
    );
}

#[test]
fn failed_uploads_are_retried_with_backoff() {
    let server = LoopbackServer::start(Behaviour {
        statuses: vec![503, 500],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut privacy = open_privacy(home.path());
    privacy.set_opted_in(true).unwrap();
    let uploader = start_uploader(&privacy, &server, always(true));
    let image = photo("photos/coffee.jpg");
    let mask = mask_for(&image);
    let sample = TrainingSample {
        original: &image,
        mask: &mask,
        model_id: "m",
    };
    enqueue(
        &privacy.store,
        &privacy.gate(),
        &privacy.consent_on_disk(),
        "coffee",
        &sample,
    )
    .unwrap()
    .unwrap();
    uploader.kick();
    let requests = server.wait_for_complete(3, Duration::from_secs(20));
    assert_eq!(requests.len(), 3, "two failures, then success");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while uploader.state().sent == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(uploader.state().sent, 1);
    assert_eq!(privacy.queued_uploads(), 0);
}

#[test]
fn consent_withdrawn_on_disk_by_the_admin_cli_is_respected_at_send_time() {
    let server = LoopbackServer::start(Behaviour::default());
    let home = tempfile::tempdir().unwrap();
    let mut privacy = open_privacy(home.path());
    privacy.set_opted_in(true).unwrap();
    let image = photo("photos/coffee.jpg");
    let mask = mask_for(&image);
    let sample = TrainingSample {
        original: &image,
        mask: &mask,
        model_id: "m",
    };
    enqueue(
        &privacy.store,
        &privacy.gate(),
        &privacy.consent_on_disk(),
        "coffee",
        &sample,
    )
    .unwrap()
    .unwrap();
    // `backgrounderase privacy opt-out` while the app runs.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
        .args(["privacy", "opt-out"])
        .env("BACKGROUNDERASE_HOME", home.path())
        .status()
        .unwrap();
    assert!(status.success());
    let uploader = start_uploader(&privacy, &server, privacy.consent_on_disk());
    uploader.kick();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.connections(), 0);
    assert!(!privacy.opted_in(), "the app follows the withdrawal");
    assert_eq!(privacy.queued_uploads(), 0, "and drops the queue");
}

#[test]
fn plain_http_to_another_machine_is_refused() {
    let err = Endpoint::parse("http://192.0.2.1/v1/samples").unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
}

#[test]
fn a_redirect_is_refused_not_followed() {
    let server = LoopbackServer::start(Behaviour {
        statuses: vec![307],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut privacy = open_privacy(home.path());
    privacy.set_opted_in(true).unwrap();
    let uploader = start_uploader(&privacy, &server, privacy.consent_on_disk());
    let image = photo("photos/coffee.jpg");
    let mask = mask_for(&image);
    let sample = TrainingSample {
        original: &image,
        mask: &mask,
        model_id: "m",
    };
    enqueue(
        &privacy.store,
        &privacy.gate(),
        &privacy.consent_on_disk(),
        "coffee",
        &sample,
    )
    .unwrap()
    .unwrap();
    uploader.kick();
    server.wait_for_complete(1, Duration::from_secs(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while uploader.state().last_error.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        1,
        "the redirect was followed: {:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_eq!(requests[0].path, "/v1/samples");
    let error = uploader.state().last_error.unwrap_or_default();
    assert!(error.contains("HTTP 307"), "{error}");
    assert_eq!(uploader.state().sent, 0);
    assert_eq!(privacy.queued_uploads(), 0, "refused for good, not retried");
}

#[test]
fn opting_out_from_a_terminal_stops_an_upload_in_flight() {
    let server = LoopbackServer::start(Behaviour {
        body_delay: Duration::from_millis(2500),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut privacy = open_privacy(home.path());
    privacy.set_opted_in(true).unwrap();
    // The app's view of consent on disk: the real settings file.
    let uploader = start_uploader(&privacy, &server, privacy.consent_on_disk());
    let image = noise(2000);
    let mask = mask_for(&image);
    let sample = TrainingSample {
        original: &image,
        mask: &mask,
        model_id: "m",
    };
    for n in 0..2 {
        enqueue(
            &privacy.store,
            &privacy.gate(),
            &privacy.consent_on_disk(),
            &format!("noise-{n}"),
            &sample,
        )
        .unwrap()
        .unwrap();
    }
    uploader.kick();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // `backgrounderase privacy opt-out` in a terminal, while the body streams.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
        .args(["privacy", "opt-out"])
        .env("BACKGROUNDERASE_HOME", home.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(5));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "no request after the opt-out");
    assert!(!requests[0].complete, "the upload in flight was cut off");
    assert_eq!(uploader.state().sent, 0);
    assert!(!privacy.gate().opted_in(), "the app follows the withdrawal");
    assert_eq!(privacy.queued_uploads(), 0);
}

#[test]
fn a_sample_queued_as_consent_is_withdrawn_never_survives_to_a_later_opt_in() {
    let image = RgbaImage::from_pixel(64, 64, image::Rgba([1, 2, 3, 255]));
    let mask = GrayImage::from_pixel(64, 64, image::Luma([200]));
    for round in 0..20 {
        let home = tempfile::tempdir().unwrap();
        let mut privacy = open_privacy(home.path());
        privacy.set_opted_in(true).unwrap();
        let (store, gate, on_disk) = (
            privacy.store.clone(),
            privacy.gate(),
            privacy.consent_on_disk(),
        );
        let (image, mask) = (image.clone(), mask.clone());
        // Counts samples queued so far: the withdrawal waits for the first one, so the race
        // happens on a slow machine too (a fixed sleep let a slow first write miss it).
        let queued_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = queued_so_far.clone();
        let writer = std::thread::spawn(move || {
            let sample = TrainingSample {
                original: &image,
                mask: &mask,
                model_id: "m",
            };
            let mut queued = 0;
            while gate.opted_in() {
                if enqueue(&store, &gate, &on_disk, "s", &sample)
                    .unwrap()
                    .is_some()
                {
                    queued += 1;
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            // A few more tries after the withdrawal is visible.
            for _ in 0..5 {
                assert!(
                    enqueue(&store, &gate, &on_disk, "s", &sample)
                        .unwrap()
                        .is_none()
                );
            }
            queued
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while queued_so_far.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: nothing queued"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // A different phase each round: the withdrawal lands at varying points of a write.
        std::thread::sleep(Duration::from_micros(300 * round));
        privacy.set_opted_in(false).unwrap();
        let queued = writer.join().unwrap();
        assert!(queued > 0, "round {round}: the race did not happen");
        assert_eq!(privacy.queued_uploads(), 0, "round {round}");
        privacy.set_opted_in(true).unwrap();
        assert_eq!(
            privacy.queued_uploads(),
            0,
            "round {round}: a sample survived"
        );
    }
}
