//! Per-image stage split on real photos at 0.3, 4 and 12 MP:
//! decode / preprocess / run / postprocess / encode (PNG with alpha).
//!
//!     scripts/fetch-test-photos && cargo bench --bench stages
//!
//! Reports the median of `BENCH_ROUNDS` (default 5) rounds per photo, then
//! best quality's whole mask (one round, against one standard pass) and the
//! designer tools on each photo's mask: shift + feather, decontaminate, and
//! the whole finishing step with a square crop and shadow.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backgrounderase::engine::Engine;
use backgrounderase::engine::decode::{DecodeLimits, decode_file};
use backgrounderase::engine::encode::{EncodeOptions, encode_result};
use backgrounderase::engine::inference::SessionOptions;
use backgrounderase::models::catalog::ModelCatalog;
use backgrounderase::paths::AppDirs;
use image::imageops::FilterType;

fn photos_dir() -> PathBuf {
    std::env::var_os("BACKGROUNDERASE_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("backgrounderase/test-photos")
        })
}

/// Real photos at the three sizes, written as JPEG (quality 92) like a camera would.
fn make_inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let src = photos_dir();
    let glow = image::open(src.join("evening-glow-2560x1600.jpg"))
        .expect("run scripts/fetch-test-photos first");
    let volna =
        image::open(src.join("volna-5120x2880.jpg")).expect("run scripts/fetch-test-photos first");
    let sizes = [
        (
            "0.3 MP (672x448)",
            glow.resize_exact(672, 448, FilterType::Lanczos3),
        ),
        ("4.1 MP (2560x1600)", glow),
        (
            "12 MP (4000x3000)",
            volna
                .crop_imm(560, 0, 4000, 2880)
                .resize_exact(4000, 3000, FilterType::Lanczos3),
        ),
    ];
    sizes
        .into_iter()
        .enumerate()
        .map(|(i, (label, img))| {
            let path = dir.join(format!("{i}.jpg"));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
                .encode_image(&img.to_rgb8())
                .unwrap();
            (label.to_string(), path)
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` convention
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let inputs = make_inputs(tmp.path());
    let t = Instant::now();
    let mut engine = Engine::load(
        &AppDirs::discover().unwrap(),
        &ModelCatalog::builtin(),
        None,
        &SessionOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "model {} on {} ({} threads), loaded in {:.0} ms",
        engine.model.id,
        engine.provider(),
        backgrounderase::engine::inference::default_threads(),
        ms(t.elapsed())
    );
    println!(
        "{:<20} {:>8} {:>10} {:>8} {:>12} {:>8} {:>9} {:>10}",
        "photo", "decode", "preprocess", "run", "postprocess", "encode", "total", "pre+post"
    );
    let mut designer_rows = Vec::new();
    for (label, path) in &inputs {
        let mut stages: [Vec<Duration>; 5] = Default::default();
        let _ = engine.mask(&decode_file(path, DecodeLimits::default()).unwrap().rgba); // warm-up
        for _ in 0..rounds {
            let t = Instant::now();
            let decoded = decode_file(path, DecodeLimits::default()).unwrap();
            stages[0].push(t.elapsed());
            let (mask, times) = engine.mask_timed(&decoded.rgba).unwrap();
            stages[1].push(times.preprocess);
            stages[2].push(times.run);
            stages[3].push(times.postprocess);
            let t = Instant::now();
            let bytes = encode_result(
                &decoded.rgba,
                &mask,
                &EncodeOptions::default(),
                decoded.icc_profile.as_deref().map(Vec::as_slice),
                path,
            )
            .unwrap();
            stages[4].push(t.elapsed());
            std::hint::black_box(bytes);
        }
        designer_rows.push((label.clone(), designer_times(path, &mut engine)));
        let m: Vec<Duration> = stages.into_iter().map(median).collect();
        let total: Duration = m.iter().sum();
        println!(
            "{:<20} {:>6.0}ms {:>8.1}ms {:>6.0}ms {:>10.1}ms {:>6.0}ms {:>7.0}ms {:>9.1}%",
            label,
            ms(m[0]),
            ms(m[1]),
            ms(m[2]),
            ms(m[3]),
            ms(m[4]),
            ms(total),
            100.0 * (ms(m[1]) + ms(m[3])) / ms(m[2])
        );
    }
    println!(
        "{:<20} {:>8} {:>12} {:>13} {:>8} {:>14}",
        "mask / tools", "standard", "best quality", "shift+feather", "despill", "all+crop+shadow"
    );
    for (label, t) in designer_rows {
        println!(
            "{:<20} {:>6.0}ms {:>10.0}ms {:>11.0}ms {:>6.0}ms {:>12.0}ms",
            label,
            ms(t[0]),
            ms(t[1]),
            ms(t[2]),
            ms(t[3]),
            ms(t[4])
        );
    }
}

/// One round of each mask quality and designer tool on the photo.
fn designer_times(path: &Path, engine: &mut Engine) -> [Duration; 5] {
    use backgrounderase::engine::finish::{FinishSettings, render};
    use backgrounderase::engine::layout::{Canvas, LayoutSettings, Margin, Shadow};
    use backgrounderase::engine::quality::Quality;
    use backgrounderase::engine::refine::{EdgeSettings, decontaminate, feather, shift};
    let image = decode_file(path, DecodeLimits::default()).unwrap().rgba;
    let mask = engine.mask(&image).unwrap();
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let standard_t = time(&mut || {
        std::hint::black_box(engine.mask_at(&image, Quality::Standard).unwrap());
    });
    let best_t = time(&mut || {
        std::hint::black_box(engine.mask_at(&image, Quality::Best).unwrap());
    });
    let edge_t = time(&mut || {
        std::hint::black_box(feather(&shift(&mask, 2), 4.0));
    });
    let despill_t = time(&mut || {
        std::hint::black_box(decontaminate(&image, &mask));
    });
    let settings = FinishSettings {
        edges: EdgeSettings {
            shift: 1,
            feather: 2.0,
            despill: true,
        },
        layout: LayoutSettings {
            crop_margin: Some(Margin::Percent(5.0)),
            canvas: Canvas::Ratio(1, 1),
            subject_fill: None,
            max_side: None,
            shadow: Some(Shadow::default()),
        },
    };
    let all_t = time(&mut || {
        let _ = std::hint::black_box(render(&image, &mask, &[], &settings));
    });
    [standard_t, best_t, edge_t, despill_t, all_t]
}
