//! Marketplace layouts: crop to the subject with a margin, place it centred
//! on a canvas preset, and a drop shadow under it. Plain CPU code shared by
//! the app's export, batch and the CLI.

use std::fmt;
use std::str::FromStr;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbaImage};
use serde::{Deserialize, Serialize};

use super::refine::box_blur;
use crate::limits::{
    MAX_CANVAS_SIDE, MAX_MARGIN_PERCENT, MAX_MARGIN_PIXELS, MAX_OUTPUT_PIXELS, MAX_RATIO_PART,
    MAX_SHADOW_PIXELS, output_size_ok,
};

/// Space kept around the subject when cropping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Margin {
    /// Percent of the subject's longer side.
    Percent(f32),
    Pixels(u32),
}

impl FromStr for Margin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            format!(
                "'{s}' is not a margin (write 0% to {MAX_MARGIN_PERCENT}% or 0px to {MAX_MARGIN_PIXELS}px)"
            )
        };
        if let Some(p) = s.strip_suffix('%') {
            let v: f32 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=MAX_MARGIN_PERCENT).contains(&v) {
                return Err(bad());
            }
            Ok(Self::Percent(v))
        } else {
            let digits = s.strip_suffix("px").unwrap_or(s).trim();
            match digits.parse() {
                Ok(v) if v <= MAX_MARGIN_PIXELS => Ok(Self::Pixels(v)),
                _ => Err(bad()),
            }
        }
    }
}

impl fmt::Display for Margin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percent(p) => write!(f, "{p}%"),
            Self::Pixels(p) => write!(f, "{p}px"),
        }
    }
}

/// The output's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Canvas {
    /// The photo's frame (or the crop's, when cropping).
    #[default]
    Original,
    /// The smallest frame of this aspect ratio around the subject, centred.
    Ratio(u32, u32),
    /// Exactly this size; the subject is scaled to fit and centred.
    Size(u32, u32),
}

impl FromStr for Canvas {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            format!(
                "'{s}' is not a canvas (original; a ratio such as 1:1 or 4:5, each part 1 to {MAX_RATIO_PART}; \
                 or WxH such as 1200x1500, each side 1 to {MAX_CANVAS_SIDE} px and {} MP at most)",
                MAX_OUTPUT_PIXELS / 1_000_000
            )
        };
        if s == "original" {
            return Ok(Self::Original);
        }
        let pair = |sep: char| -> Option<(u32, u32)> {
            let (a, b) = s.split_once(sep)?;
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a > 0 && b > 0).then_some((a, b))
        };
        if s.contains(':') {
            return match pair(':') {
                Some((a, b)) if a <= MAX_RATIO_PART && b <= MAX_RATIO_PART => Ok(Self::Ratio(a, b)),
                _ => Err(bad()),
            };
        }
        match pair('x') {
            Some((w, h))
                if w <= MAX_CANVAS_SIDE
                    && h <= MAX_CANVAS_SIDE
                    && u64::from(w) * u64::from(h) <= MAX_OUTPUT_PIXELS =>
            {
                Ok(Self::Size(w, h))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Canvas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Original => f.write_str("original"),
            Self::Ratio(a, b) => write!(f, "{a}:{b}"),
            Self::Size(w, h) => write!(f, "{w}x{h}"),
        }
    }
}

/// A soft black shadow under the subject.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shadow {
    /// Offset in output pixels (right, down).
    pub offset: [i32; 2],
    /// Blur radius in output pixels.
    pub blur: f32,
    /// 0..1.
    pub opacity: f32,
}

impl Default for Shadow {
    fn default() -> Self {
        Self {
            offset: [12, 16],
            blur: 18.0,
            opacity: 0.45,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LayoutSettings {
    /// Crop to the subject with this margin; `None` keeps the whole photo.
    pub crop_margin: Option<Margin>,
    pub canvas: Canvas,
    /// The subject's extent as a percentage of the canvas along its
    /// limiting side, centred (what marketplaces specify: "the product
    /// fills 85 % of the image"). Replaces the crop margin when set.
    pub subject_fill: Option<f32>,
    /// The output's longest side at most this many pixels: a larger frame
    /// is scaled down as a whole (never up).
    pub max_side: Option<u32>,
    pub shadow: Option<Shadow>,
}

impl LayoutSettings {
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }
}

/// A rectangle in pixels, `x1`/`y1` exclusive; may reach outside the photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl Rect {
    pub fn width(&self) -> i64 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> i64 {
        self.y1 - self.y0
    }
}

/// Alpha at or below this (≈ 5 %) does not count as subject: stray
/// low-confidence pixels would otherwise widen the crop.
const SUBJECT_ALPHA: u8 = 12;

/// The tightest box around the subject, if there is one.
pub fn subject_bounds(alpha: &GrayImage) -> Option<Rect> {
    let (w, h) = alpha.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..h {
        let row = &alpha.as_raw()[(y * w) as usize..((y + 1) * w) as usize];
        let Some(first) = row.iter().position(|&a| a > SUBJECT_ALPHA) else {
            continue;
        };
        let last = row
            .iter()
            .rposition(|&a| a > SUBJECT_ALPHA)
            .unwrap_or(first);
        x0 = x0.min(first as u32);
        x1 = x1.max(last as u32 + 1);
        y0 = y0.min(y);
        y1 = y + 1;
    }
    (x0 != u32::MAX).then(|| Rect {
        x0: i64::from(x0),
        y0: i64::from(y0),
        x1: i64::from(x1),
        y1: i64::from(y1),
    })
}

/// Where the photo's pixels land on the canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub canvas: (u32, u32),
    /// The part of the photo shown (may reach outside it: transparent there).
    pub region: Rect,
    /// Top-left of the region on the canvas, and its size there.
    pub at: (i64, i64),
    pub size: (u32, u32),
}

/// A layout whose crop or canvas would exceed the export limit
/// ([`MAX_OUTPUT_PIXELS`]); checked before any of it is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub width: u64,
    pub height: u64,
}

/// The frame for `alpha` (the final alpha, so strokes count) under `layout`.
/// Values out of range (a settings file edited by hand) are clamped to the
/// limits the parsers enforce; a frame over the export limit is an error.
pub fn place(alpha: &GrayImage, layout: &LayoutSettings) -> Result<Placement, TooLarge> {
    let (w, h) = alpha.dimensions();
    let whole = Rect {
        x0: 0,
        y0: 0,
        x1: i64::from(w),
        y1: i64::from(h),
    };
    let bounds = subject_bounds(alpha);
    let fill = layout
        .subject_fill
        .filter(|f| f.is_finite())
        .map(|f| f.clamp(MIN_SUBJECT_FILL, 100.0) / 100.0);
    let region = match (fill, layout.crop_margin, bounds) {
        (Some(fill), _, Some(b)) => {
            framed_for_fill(b, f64::from(fill), aspect_of(layout.canvas, w, h))
        }
        (None, Some(margin), Some(b)) => {
            let m = match margin {
                Margin::Percent(p) => {
                    let p = if p.is_finite() {
                        p.clamp(0.0, MAX_MARGIN_PERCENT)
                    } else {
                        0.0
                    };
                    (b.width().max(b.height()) as f64 * f64::from(p) / 100.0).round() as i64
                }
                Margin::Pixels(p) => i64::from(p.min(MAX_MARGIN_PIXELS)),
            };
            Rect {
                x0: b.x0 - m,
                y0: b.y0 - m,
                x1: b.x1 + m,
                y1: b.y1 + m,
            }
        }
        _ => whole,
    };
    let (rw, rh) = (region.width().max(1), region.height().max(1));
    // The crop is allocated whole before any scaling to the canvas.
    if !output_size_ok(rw as u64, rh as u64) {
        return Err(TooLarge {
            width: rw as u64,
            height: rh as u64,
        });
    }
    let placement = match layout.canvas {
        Canvas::Original => Placement {
            canvas: (rw as u32, rh as u32),
            region,
            at: (0, 0),
            size: (rw as u32, rh as u32),
        },
        Canvas::Ratio(a, b) => {
            let (a, b) = (
                i64::from(a.clamp(1, MAX_RATIO_PART)),
                i64::from(b.clamp(1, MAX_RATIO_PART)),
            );
            let (cw, ch) = if rw * b >= rh * a {
                (rw, (rw * b + a - 1) / a)
            } else {
                ((rh * a + b - 1) / b, rh)
            };
            Placement {
                canvas: (cw as u32, ch as u32),
                region,
                at: ((cw - rw) / 2, (ch - rh) / 2),
                size: (rw as u32, rh as u32),
            }
        }
        Canvas::Size(cw, ch) => {
            let (cw, ch) = (cw.clamp(1, MAX_CANVAS_SIDE), ch.clamp(1, MAX_CANVAS_SIDE));
            let scale = (f64::from(cw) / rw as f64).min(f64::from(ch) / rh as f64);
            let (sw, sh) = (
                ((rw as f64 * scale).round() as u32).clamp(1, cw),
                ((rh as f64 * scale).round() as u32).clamp(1, ch),
            );
            Placement {
                canvas: (cw, ch),
                region,
                at: (i64::from((cw - sw) / 2), i64::from((ch - sh) / 2)),
                size: (sw, sh),
            }
        }
    };
    let placement = match layout.max_side {
        Some(max) => within_side(placement, max.max(MIN_MAX_SIDE)),
        None => placement,
    };
    let (cw, ch) = placement.canvas;
    if !output_size_ok(u64::from(cw), u64::from(ch)) {
        return Err(TooLarge {
            width: u64::from(cw),
            height: u64::from(ch),
        });
    }
    Ok(placement)
}

/// The smallest "subject fill" that is accepted, in percent: below it the
/// frame around a subject would grow without bound.
pub const MIN_SUBJECT_FILL: f32 = 1.0;

/// The smallest "maximum size" accepted, in pixels.
pub const MIN_MAX_SIDE: u32 = 16;

/// The shape of the frame `canvas` asks for, as width and height parts;
/// the photo's own for the original frame.
fn aspect_of(canvas: Canvas, width: u32, height: u32) -> (i64, i64) {
    match canvas {
        Canvas::Original => (i64::from(width.max(1)), i64::from(height.max(1))),
        Canvas::Ratio(a, b) => (
            i64::from(a.clamp(1, MAX_RATIO_PART)),
            i64::from(b.clamp(1, MAX_RATIO_PART)),
        ),
        Canvas::Size(w, h) => (
            i64::from(w.clamp(1, MAX_CANVAS_SIDE)),
            i64::from(h.clamp(1, MAX_CANVAS_SIDE)),
        ),
    }
}

/// The frame (photo pixels) of aspect `aspect` centred on the subject box
/// `b`, in which the subject spans `fill` of the frame along its limiting
/// side. It may reach outside the photo (padded with transparency).
fn framed_for_fill(b: Rect, fill: f64, aspect: (i64, i64)) -> Rect {
    let (bw, bh) = (b.width().max(1) as f64, b.height().max(1) as f64);
    let (aw, ah) = (aspect.0 as f64, aspect.1 as f64);
    let frame_w = (bw / fill).max(bh / fill * aw / ah);
    let frame_h = frame_w * ah / aw;
    // Whole pixels of the subject's parity, so it sits exactly in the middle.
    let parity = |frame: f64, subject: i64| {
        let f = frame.round().max(1.0) as i64;
        if (f - subject) % 2 == 0 { f } else { f + 1 }
    };
    let (fw, fh) = (parity(frame_w, b.width()), parity(frame_h, b.height()));
    let (cx2, cy2) = (b.x0 + b.x1, b.y0 + b.y1);
    let x0 = (cx2 - fw).div_euclid(2);
    let y0 = (cy2 - fh).div_euclid(2);
    Rect {
        x0,
        y0,
        x1: x0 + fw,
        y1: y0 + fh,
    }
}

/// `placement` scaled down as a whole so that its longest side is at most
/// `max` pixels; unchanged when it already is.
fn within_side(placement: Placement, max: u32) -> Placement {
    let (cw, ch) = placement.canvas;
    let longest = cw.max(ch);
    if longest <= max {
        return placement;
    }
    let k = f64::from(max) / f64::from(longest);
    let scale = |v: u32| ((f64::from(v) * k).round() as u32).max(1);
    let canvas = (scale(cw).min(max), scale(ch).min(max));
    let size = (
        scale(placement.size.0).min(canvas.0),
        scale(placement.size.1).min(canvas.1),
    );
    Placement {
        canvas,
        region: placement.region,
        at: (
            (placement.at.0 as f64 * k).round() as i64,
            (placement.at.1 as f64 * k).round() as i64,
        ),
        size,
    }
}

/// The cut-out `layer` (straight alpha) framed by `placement`, with the
/// shadow under it; straight alpha, transparent around.
pub fn render(layer: &RgbaImage, placement: &Placement, shadow: Option<&Shadow>) -> RgbaImage {
    let region = crop_padded(layer, &placement.region);
    let scaled = if (region.width(), region.height()) == placement.size {
        region
    } else {
        resize_premultiplied(&region, placement.size.0, placement.size.1)
    };
    let (cw, ch) = placement.canvas;
    let mut canvas = RgbaImage::new(cw, ch);
    let (ax, ay) = placement.at;
    for (x, y, px) in scaled.enumerate_pixels() {
        let (cx, cy) = (ax + i64::from(x), ay + i64::from(y));
        if cx >= 0 && cy >= 0 && cx < i64::from(cw) && cy < i64::from(ch) {
            canvas.put_pixel(cx as u32, cy as u32, *px);
        }
    }
    match shadow {
        Some(shadow) if shadow.opacity > 0.0 => with_shadow(&canvas, shadow),
        _ => canvas,
    }
}

/// The shadow's alpha: the subject's alpha moved by the offset, blurred,
/// times the opacity. Zero wherever the moved, blurred silhouette is.
pub fn shadow_alpha(canvas: &RgbaImage, shadow: &Shadow) -> Vec<f32> {
    let (w, h) = (canvas.width() as usize, canvas.height() as usize);
    let limit = MAX_SHADOW_PIXELS as i32;
    let [dx, dy] = shadow.offset.map(|d| d.clamp(-limit, limit));
    let mut moved = vec![0f32; w * h];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let (sx, sy) = (x - i64::from(dx), y - i64::from(dy));
            if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
                moved[y as usize * w + x as usize] =
                    f32::from(canvas.get_pixel(sx as u32, sy as u32)[3]) / 255.0;
            }
        }
    }
    let blur = if shadow.blur.is_finite() {
        shadow.blur.clamp(0.0, MAX_SHADOW_PIXELS)
    } else {
        0.0
    };
    let r = ((blur / 3.0).round() as usize).max(1);
    if blur > 0.0 {
        for _ in 0..3 {
            moved = box_blur(&moved, w, h, r);
        }
    }
    let opacity = shadow.opacity.clamp(0.0, 1.0);
    moved.iter().map(|a| a * opacity).collect()
}

fn with_shadow(canvas: &RgbaImage, shadow: &Shadow) -> RgbaImage {
    let under = shadow_alpha(canvas, shadow);
    let mut out = canvas.clone();
    for (px, s) in out.pixels_mut().zip(under) {
        let a = f32::from(px[3]) / 255.0;
        let total = a + s * (1.0 - a);
        if total <= 0.0 {
            continue;
        }
        // Black under the subject: colour = subject × a / total (straight).
        for c in 0..3 {
            px[c] = (f32::from(px[c]) * a / total).round() as u8;
        }
        px[3] = (total * 255.0).round() as u8;
    }
    out
}

fn crop_padded(layer: &RgbaImage, r: &Rect) -> RgbaImage {
    let (w, h) = (r.width().max(1) as u32, r.height().max(1) as u32);
    let mut out = RgbaImage::new(w, h);
    for y in 0..h {
        let sy = r.y0 + i64::from(y);
        if sy < 0 || sy >= i64::from(layer.height()) {
            continue;
        }
        for x in 0..w {
            let sx = r.x0 + i64::from(x);
            if sx >= 0 && sx < i64::from(layer.width()) {
                out.put_pixel(x, y, *layer.get_pixel(sx as u32, sy as u32));
            }
        }
    }
    out
}

#[allow(clippy::expect_used, reason = "both sides are RGBA of the sizes given")]
fn resize_premultiplied(src: &RgbaImage, w: u32, h: u32) -> RgbaImage {
    let mut dst = Image::new(w, h, PixelType::U8x4);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
        .use_alpha(true);
    Resizer::new()
        .resize(src, &mut dst, &options)
        .expect("RGBA to RGBA");
    RgbaImage::from_raw(w, h, dst.into_vec()).expect("sized by resize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    /// A 100×80 photo with an opaque 20×30 subject at (30, 20).
    fn subject() -> (RgbaImage, GrayImage) {
        let alpha = GrayImage::from_fn(100, 80, |x, y| {
            Luma([if (30..50).contains(&x) && (20..50).contains(&y) {
                255
            } else {
                0
            }])
        });
        let layer = RgbaImage::from_fn(100, 80, |x, y| {
            Rgba([200, 100, 50, alpha.get_pixel(x, y)[0]])
        });
        (layer, alpha)
    }

    #[test]
    fn margins_and_canvases_parse() {
        assert_eq!("5%".parse(), Ok(Margin::Percent(5.0)));
        assert_eq!("40px".parse(), Ok(Margin::Pixels(40)));
        assert_eq!("40".parse(), Ok(Margin::Pixels(40)));
        assert!("-3%".parse::<Margin>().is_err());
        assert_eq!("1:1".parse(), Ok(Canvas::Ratio(1, 1)));
        assert_eq!("4:5".parse(), Ok(Canvas::Ratio(4, 5)));
        assert_eq!("1200x1500".parse(), Ok(Canvas::Size(1200, 1500)));
        assert_eq!("Original".parse(), Ok(Canvas::Original));
        assert!("0:1".parse::<Canvas>().is_err());
        assert!("big".parse::<Canvas>().is_err());
    }

    #[test]
    fn crop_with_a_margin_gives_the_expected_box() {
        let (layer, alpha) = subject();
        assert_eq!(
            subject_bounds(&alpha),
            Some(Rect {
                x0: 30,
                y0: 20,
                x1: 50,
                y1: 50
            })
        );
        let layout = LayoutSettings {
            crop_margin: Some(Margin::Pixels(5)),
            ..Default::default()
        };
        let p = place(&alpha, &layout).unwrap();
        assert_eq!(p.canvas, (30, 40));
        let out = render(&layer, &p, None);
        // The subject sits exactly 5 px in from every side.
        assert_eq!(
            subject_bounds(&alpha_of(&out)),
            Some(Rect {
                x0: 5,
                y0: 5,
                x1: 25,
                y1: 35
            })
        );
        // 10 % of the longer side (30 px) is 3 px.
        let p = place(
            &alpha,
            &LayoutSettings {
                crop_margin: Some(Margin::Percent(10.0)),
                ..layout
            },
        )
        .unwrap();
        assert_eq!(p.canvas, (26, 36));
    }

    /// The box of pixels at least half opaque (resampling spreads a faint
    /// ramp around a scaled edge).
    fn half_bounds(img: &RgbaImage) -> Option<Rect> {
        let half = GrayImage::from_fn(img.width(), img.height(), |x, y| {
            Luma([if img.get_pixel(x, y)[3] >= 128 {
                255
            } else {
                0
            }])
        });
        subject_bounds(&half)
    }

    fn alpha_of(img: &RgbaImage) -> GrayImage {
        GrayImage::from_fn(img.width(), img.height(), |x, y| {
            Luma([img.get_pixel(x, y)[3]])
        })
    }

    #[test]
    fn subject_fill_sizes_the_subject_to_its_share_of_the_canvas_centred() {
        // A 200×300 subject at 85 % of a 2000×2000 canvas: its limiting
        // (taller) side spans 1700 px, centred both ways.
        let alpha = GrayImage::from_fn(1000, 800, |x, y| {
            Luma([if (300..500).contains(&x) && (200..500).contains(&y) {
                255
            } else {
                0
            }])
        });
        let layer = RgbaImage::from_fn(1000, 800, |x, y| {
            Rgba([200, 100, 50, alpha.get_pixel(x, y)[0]])
        });
        let layout = LayoutSettings {
            canvas: Canvas::Size(2000, 2000),
            subject_fill: Some(85.0),
            crop_margin: Some(Margin::Pixels(40)), // replaced by the fill
            ..Default::default()
        };
        let p = place(&alpha, &layout).unwrap();
        assert_eq!(p.canvas, (2000, 2000));
        let b = half_bounds(&render(&layer, &p, None)).unwrap();
        // The frame is whole photo pixels (354 for 352.9): within 0.5 %.
        assert!((1692..=1708).contains(&b.height()), "{b:?}");
        assert!((1128..=1139).contains(&b.width()), "{b:?}");
        assert!(((b.y0 + b.y1) - 2000).abs() <= 2, "{b:?}");
        assert!(((b.x0 + b.x1) - 2000).abs() <= 2, "{b:?}");

        let (layer, alpha) = subject();
        // On a 4:5 ratio the frame is made around the subject, unscaled:
        // 30 px tall at 50 % → 60 px tall, 48 px wide.
        let ratio = LayoutSettings {
            canvas: Canvas::Ratio(4, 5),
            subject_fill: Some(50.0),
            ..Default::default()
        };
        assert_eq!(place(&alpha, &ratio).unwrap().canvas, (48, 60));
        // A frame larger than the photo is padded, not clipped.
        let out = render(&layer, &place(&alpha, &ratio).unwrap(), None);
        let b = half_bounds(&out).unwrap();
        assert_eq!((b.width(), b.height()), (20, 30));
        assert_eq!((b.x0, b.y0), (14, 15));
    }

    #[test]
    fn max_side_scales_the_whole_output_down_never_up() {
        let (layer, alpha) = subject();
        let capped = LayoutSettings {
            max_side: Some(50),
            ..Default::default()
        };
        let p = place(&alpha, &capped).unwrap();
        assert_eq!(p.canvas, (50, 40));
        let b = half_bounds(&render(&layer, &p, None)).unwrap();
        assert_eq!((b.x0, b.y0, b.width(), b.height()), (15, 10, 10, 15));
        // Already small enough: unchanged.
        let roomy = LayoutSettings {
            max_side: Some(500),
            ..Default::default()
        };
        assert_eq!(place(&alpha, &roomy).unwrap().canvas, (100, 80));
        // With a fixed canvas the cap wins (2000² → 1000²).
        let sized = LayoutSettings {
            canvas: Canvas::Size(2000, 2000),
            subject_fill: Some(85.0),
            max_side: Some(1000),
            ..Default::default()
        };
        assert_eq!(place(&alpha, &sized).unwrap().canvas, (1000, 1000));
    }

    #[test]
    fn square_and_sized_canvases_centre_the_subject() {
        let (layer, alpha) = subject();
        let square = LayoutSettings {
            crop_margin: Some(Margin::Pixels(0)),
            canvas: Canvas::Ratio(1, 1),
            subject_fill: None,
            max_side: None,
            shadow: None,
        };
        let p = place(&alpha, &square).unwrap();
        assert_eq!(p.canvas, (30, 30));
        let b = subject_bounds(&alpha_of(&render(&layer, &p, None))).unwrap();
        assert_eq!((b.x0, b.x1, b.y0, b.y1), (5, 25, 0, 30));

        let sized = LayoutSettings {
            canvas: Canvas::Size(300, 300),
            ..square
        };
        let p = place(&alpha, &sized).unwrap();
        assert_eq!((p.canvas, p.size), ((300, 300), (200, 300)));
        let out = render(&layer, &p, None);
        assert_eq!(out.dimensions(), (300, 300));
        let b = subject_bounds(&alpha_of(&out)).unwrap();
        assert!((b.x0 - 50).abs() <= 1 && (b.x1 - 250).abs() <= 1, "{b:?}");
    }

    #[test]
    fn the_shadow_lies_under_the_subject_only() {
        let (layer, alpha) = subject();
        let shadow = Shadow {
            offset: [6, 8],
            blur: 6.0,
            opacity: 0.5,
        };
        let p = place(&alpha, &LayoutSettings::default()).unwrap();
        let plain = render(&layer, &p, None);
        let shaded = render(&layer, &p, Some(&shadow));
        for (x, y, px) in shaded.enumerate_pixels() {
            let before = plain.get_pixel(x, y);
            if before[3] == 255 {
                assert_eq!(px, before, "an opaque subject pixel changed at ({x}, {y})");
            }
            // Only within the moved silhouette grown by the blur's reach.
            let (sx, sy) = (i64::from(x) - 6, i64::from(y) - 8);
            let near = (30 - 6..50 + 6).contains(&sx) && (20 - 6..50 + 6).contains(&sy);
            if !near {
                assert_eq!(
                    px[3], before[3],
                    "shadow away from the subject at ({x}, {y})"
                );
            }
        }
        // Below-right of the subject there is shadow, dark and partly opaque.
        let under = shaded.get_pixel(52, 54);
        assert!(
            under[3] > 60 && under[3] < 200 && under[0] == 0,
            "{under:?}"
        );
    }
}
