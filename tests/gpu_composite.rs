//! The WGSL compositor rendered offscreen on a real wgpu device (lavapipe in
//! CI) against the CPU reference composite, for every kind of background.

mod common;

use std::sync::Arc;

use backgrounderase::composite::Background;
use backgrounderase::composite::cpu::composite;
use backgrounderase::composite::gpu::{Compositor, headless_device};
use common::fixture;
use image::{GrayImage, Luma, RgbaImage};

fn max_channel_difference(a: &RgbaImage, b: &RgbaImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

#[test]
fn wgsl_export_matches_the_cpu_reference_within_one_level() {
    let (device, queue) = headless_device().unwrap_or_else(|e| {
        panic!("a wgpu adapter is required (lavapipe: mesa-vulkan-drivers): {e}")
    });
    let compositor = Compositor::new(&device, None);

    // A real photo with real transparency, and a soft mask with every level.
    let photo = image::open(fixture("objects/bear.png")).unwrap().to_rgba8();
    let (w, h) = photo.dimensions();
    let mask = GrayImage::from_fn(w, h, |x, y| Luma([((x * 255 / (w - 1)) ^ (y % 7)) as u8]));
    let picture = Background::Picture {
        key: 7,
        image: Arc::new(
            image::open(fixture("photos/coffee.jpg"))
                .unwrap()
                .to_rgba8(),
        ),
    };
    let cases = [
        ("transparent", Background::Transparent),
        ("colour", Background::Colour([20, 200, 90])),
        ("picture", picture),
        ("blur", Background::Blur),
    ];
    for (name, background) in cases {
        // The picture scaled to cover the photo, or the photo blurred.
        let texture = background.pixels_for(&photo).map(|(_, pixels)| pixels);
        let layer = compositor
            .upload(&device, &queue, &photo, &mask, texture.as_ref())
            .unwrap();
        let gpu = compositor
            .render_export(&device, &queue, &layer, &background)
            .unwrap();
        let cpu = composite(&photo, &mask, &background);
        let diff = max_channel_difference(&gpu, &cpu);
        println!("{name}: max difference {diff}/255");
        assert!(diff <= 1, "{name}: GPU and CPU differ by {diff}/255");
    }
}

/// The designer settings (strokes, shift, feather, decontamination,
/// crop to a square canvas, drop shadow) feed the same compositor: the WGSL
/// export of the finished layers and the CPU reference agree within one
/// level, over a colour and over transparency; and the preview's live
/// update of the mask texture (write_mask) gives the same export as a
/// fresh upload.
#[test]
fn finished_layers_match_on_gpu_and_cpu_and_mask_updates_in_place() {
    use backgrounderase::engine::finish::{FinishSettings, render};
    use backgrounderase::engine::layout::{Canvas, LayoutSettings, Margin, Shadow};
    use backgrounderase::engine::refine::{BrushMode, EdgeSettings, Stroke};

    let (device, queue) = headless_device().unwrap_or_else(|e| {
        panic!("a wgpu adapter is required (lavapipe: mesa-vulkan-drivers): {e}")
    });
    let compositor = Compositor::new(&device, None);
    let photo = image::open(fixture("photos/coffee.jpg"))
        .unwrap()
        .to_rgba8();
    let (w, h) = photo.dimensions();
    // A soft elliptical subject as the model's mask.
    let mask = GrayImage::from_fn(w, h, |x, y| {
        let dx = (x as f32 - w as f32 / 2.0) / (w as f32 * 0.3);
        let dy = (y as f32 - h as f32 / 2.0) / (h as f32 * 0.35);
        let d = (dx * dx + dy * dy).sqrt();
        Luma([((1.0 - d) * 8.0 * 255.0).clamp(0.0, 255.0) as u8])
    });
    let strokes = [Stroke {
        mode: BrushMode::Erase,
        radius: 12.0,
        hardness: 0.6,
        points: vec![
            [w as f32 * 0.4, h as f32 * 0.5],
            [w as f32 * 0.6, h as f32 * 0.45],
        ],
    }];
    let settings = FinishSettings {
        edges: EdgeSettings {
            shift: 1,
            feather: 3.0,
            despill: true,
        },
        layout: LayoutSettings {
            crop_margin: Some(Margin::Percent(8.0)),
            canvas: Canvas::Ratio(1, 1),
            subject_fill: None,
            max_side: None,
            shadow: Some(Shadow::default()),
        },
    };
    let (colours, alpha) = render(&photo, &mask, &strokes, &settings).unwrap();
    assert_eq!(colours.width(), colours.height());
    for (name, background) in [
        ("transparent", Background::Transparent),
        ("white", Background::Colour([255, 255, 255])),
    ] {
        let layer = compositor
            .upload(&device, &queue, &colours, &alpha, None)
            .unwrap();
        let gpu = compositor
            .render_export(&device, &queue, &layer, &background)
            .unwrap();
        let cpu = composite(&colours, &alpha, &background);
        let diff = max_channel_difference(&gpu, &cpu);
        println!("finished, {name}: max difference {diff}/255");
        assert!(diff <= 1, "{name}: GPU and CPU differ by {diff}/255");
    }

    // Live edit path: upload the model's mask, then rewrite it in place.
    let edited = backgrounderase::engine::refine::finish_mask(&mask, &strokes, &settings.edges);
    let layer = compositor
        .upload(&device, &queue, &photo, &mask, None)
        .unwrap();
    compositor.write_mask(&queue, &layer, &edited);
    let in_place = compositor
        .render_export(&device, &queue, &layer, &Background::Transparent)
        .unwrap();
    let fresh = compositor
        .upload(&device, &queue, &photo, &edited, None)
        .unwrap();
    let uploaded = compositor
        .render_export(&device, &queue, &fresh, &Background::Transparent)
        .unwrap();
    assert_eq!(max_channel_difference(&in_place, &uploaded), 0);
}
