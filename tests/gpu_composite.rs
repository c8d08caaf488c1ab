//! The WGSL compositor rendered offscreen on a real wgpu device (lavapipe in
//! CI) against the CPU reference composite, for every kind of background.

mod common;

use backgrounderase::engine::composite::{CompositeBackground, blurred, composite, cover};
use backgrounderase::gpu::{Compositor, LayerBackground, headless_device};
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
    let picture = cover(
        &image::open(fixture("photos/coffee.jpg"))
            .unwrap()
            .to_rgba8(),
        w,
        h,
    );
    let blur = blurred(&image::open(fixture("photos/grass.png")).unwrap().to_rgba8());
    let blur = cover(&blur, w, h);

    let cases: [(
        &str,
        LayerBackground,
        CompositeBackground<'_>,
        Option<&RgbaImage>,
    ); 4] = [
        (
            "transparent",
            LayerBackground::Transparent,
            CompositeBackground::Transparent,
            None,
        ),
        (
            "colour",
            LayerBackground::Colour([20, 200, 90]),
            CompositeBackground::Colour([20, 200, 90]),
            None,
        ),
        (
            "image",
            LayerBackground::Texture,
            CompositeBackground::Image(&picture),
            Some(&picture),
        ),
        (
            "blur",
            LayerBackground::Texture,
            CompositeBackground::Image(&blur),
            Some(&blur),
        ),
    ];
    for (name, gpu_bg, cpu_bg, texture) in cases {
        let layer = compositor
            .upload(&device, &queue, &photo, &mask, texture)
            .unwrap();
        let gpu = compositor
            .render_export(&device, &queue, &layer, gpu_bg)
            .unwrap();
        let cpu = composite(&photo, &mask, cpu_bg);
        let diff = max_channel_difference(&gpu, &cpu);
        println!("{name}: max difference {diff}/255");
        assert!(diff <= 1, "{name}: GPU and CPU differ by {diff}/255");
    }
}
