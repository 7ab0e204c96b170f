//! Views: the augmented crops each teacher sees and the student is trained on.
//!
//! A view is a random resized crop and an optional horizontal flip. Its parameters are
//! drawn from a generator seeded by (pipeline seed, image id, view index) alone, so the
//! same seed gives the same views whatever the order or parallelism of the run, and they
//! are stored in the cache so that any loader can rebuild exactly what a teacher saw.

use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A crop box in source pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One augmented view of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Index of the view among its image's views.
    pub index: u16,
    /// The crop, in source pixels.
    pub crop: CropBox,
    /// Whether the crop is flipped left to right after resizing.
    pub flip: bool,
}

/// Parameters of the random resized crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewSampler {
    pub seed: u64,
    /// Range of the crop area, as a fraction of the image area.
    pub scale: [f64; 2],
    /// Range of the crop aspect ratio, width over height.
    pub ratio: [f64; 2],
    pub flip_probability: f64,
    /// Every view is the whole image, unflipped (full-image mode).
    pub full_image: bool,
}

impl ViewSampler {
    /// Draws `count` views of an image of `width` x `height` pixels.
    pub fn sample(&self, image_id: u64, width: u32, height: u32, count: usize) -> Vec<View> {
        (0..count)
            .map(|i| {
                let index = u16::try_from(i).expect("views_per_image is validated to fit u16");
                if self.full_image {
                    let crop = CropBox {
                        x: 0,
                        y: 0,
                        width,
                        height,
                    };
                    return View {
                        index,
                        crop,
                        flip: false,
                    };
                }
                let mut rng = self.rng_for(image_id, index);
                let crop = self.sample_crop(&mut rng, width, height);
                let flip = rng.random_bool(self.flip_probability);
                View { index, crop, flip }
            })
            .collect()
    }

    fn rng_for(&self, image_id: u64, index: u16) -> ChaCha8Rng {
        let mut key = [0u8; 18];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&image_id.to_le_bytes());
        key[16..].copy_from_slice(&index.to_le_bytes());
        ChaCha8Rng::seed_from_u64(xxhash_rust::xxh3::xxh3_64(&key))
    }

    /// The torchvision RandomResizedCrop algorithm: ten tries at a random area and
    /// log-uniform aspect ratio, then the largest centred crop within the ratio range.
    fn sample_crop(&self, rng: &mut ChaCha8Rng, width: u32, height: u32) -> CropBox {
        let area = f64::from(width) * f64::from(height);
        let (log_lo, log_hi) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale[0]..=self.scale[1]);
            let aspect = rng.random_range(log_lo..=log_hi).exp();
            let w = (target * aspect).sqrt().round() as u32;
            let h = (target / aspect).sqrt().round() as u32;
            if w > 0 && h > 0 && w <= width && h <= height {
                let x = rng.random_range(0..=width - w);
                let y = rng.random_range(0..=height - h);
                return CropBox {
                    x,
                    y,
                    width: w,
                    height: h,
                };
            }
        }
        self.center_crop(width, height)
    }

    fn center_crop(&self, width: u32, height: u32) -> CropBox {
        let in_ratio = f64::from(width) / f64::from(height);
        let (w, h) = if in_ratio < self.ratio[0] {
            (
                width,
                ((f64::from(width) / self.ratio[0]).round() as u32).max(1),
            )
        } else if in_ratio > self.ratio[1] {
            (
                ((f64::from(height) * self.ratio[1]).round() as u32).max(1),
                height,
            )
        } else {
            (width, height)
        };
        CropBox {
            x: (width - w) / 2,
            y: (height - h) / 2,
            width: w,
            height: h,
        }
    }
}

/// Resampling filter named by a timm `interpolation` string.
///
/// `bicubic` is Catmull-Rom and `bilinear` the triangle filter, both with their support
/// widened when downscaling (antialiased, as PIL does); anything else is nearest.
pub fn filter_for(interpolation: &str) -> ResizeAlg {
    match interpolation {
        "bicubic" => ResizeAlg::Convolution(FilterType::CatmullRom),
        "bilinear" => ResizeAlg::Convolution(FilterType::Bilinear),
        "lanczos" => ResizeAlg::Convolution(FilterType::Lanczos3),
        _ => ResizeAlg::Nearest,
    }
}

/// Renders a view: crops `image`, resizes the crop to `width` x `height` and flips it.
///
/// # Panics
///
/// When the crop box does not lie inside the image.
pub fn render(
    image: &RgbImage,
    view: &View,
    width: u32,
    height: u32,
    filter: ResizeAlg,
) -> RgbImage {
    let c = view.crop;
    assert!(
        c.x + c.width <= image.width() && c.y + c.height <= image.height(),
        "crop {c:?} lies outside a {}x{} image",
        image.width(),
        image.height()
    );
    let src = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .expect("an RgbImage buffer holds width * height * 3 bytes");
    // Resize the crop alone, as torchvision's resized_crop does: the filter never reads
    // pixels outside the crop box.
    let crop = CroppedImage::new(&src, c.x, c.y, c.width, c.height).expect("checked above");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(filter);
    Resizer::new()
        .resize(&crop, &mut dst, &options)
        .expect("source and destination are both U8x3");
    let mut out = RgbImage::from_raw(width, height, dst.into_vec()).expect("U8x3 buffer");
    if view.flip {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(seed: u64) -> ViewSampler {
        ViewSampler {
            seed,
            scale: [0.35, 1.0],
            ratio: [0.75, 4.0 / 3.0],
            flip_probability: 0.5,
            full_image: false,
        }
    }

    #[test]
    fn same_seed_same_views_other_seed_other_views() {
        let a = sampler(7).sample(42, 640, 480, 8);
        assert_eq!(a, sampler(7).sample(42, 640, 480, 8));
        assert_ne!(a, sampler(8).sample(42, 640, 480, 8));
        assert_ne!(a, sampler(7).sample(43, 640, 480, 8));
    }

    #[test]
    fn crops_stay_inside_and_respect_the_area_range() {
        for view in sampler(1).sample(3, 300, 200, 64) {
            let c = view.crop;
            assert!(c.x + c.width <= 300 && c.y + c.height <= 200, "{c:?}");
            let frac = f64::from(c.width * c.height) / 60_000.0;
            assert!((0.3..=1.0).contains(&frac), "{c:?} covers {frac}");
        }
    }

    #[test]
    fn flips_happen_at_about_the_given_rate() {
        let flips = sampler(5)
            .sample(9, 100, 100, 2000)
            .iter()
            .filter(|v| v.flip)
            .count();
        assert!((850..1150).contains(&flips), "{flips} flips of 2000");
    }

    #[test]
    fn render_resizes_only_the_crop() {
        // Left half red, right half blue; a crop of the right half is all blue.
        let img = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let crop = CropBox {
            x: 20,
            y: 0,
            width: 20,
            height: 20,
        };
        let view = View {
            index: 0,
            crop,
            flip: false,
        };
        let out = render(&img, &view, 7, 5, filter_for("bicubic"));
        assert_eq!(out.dimensions(), (7, 5));
        assert!(
            out.pixels().all(|p| p.0 == [0, 0, 255]),
            "{:?}",
            out.get_pixel(0, 0)
        );
    }

    #[test]
    fn render_flips_left_to_right() {
        let mut img = RgbImage::new(4, 2);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        let crop = CropBox {
            x: 0,
            y: 0,
            width: 4,
            height: 2,
        };
        let flipped = View {
            index: 0,
            crop,
            flip: true,
        };
        let out = render(&img, &flipped, 4, 2, ResizeAlg::Nearest);
        assert_eq!(out.get_pixel(3, 0).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
    }
}
