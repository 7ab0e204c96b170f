//! Decoding encoded images to 8-bit RGB, in one documented way.
//!
//! EXIF orientation is applied; grayscale is expanded to three channels; alpha is dropped
//! (as PIL's `convert("RGB")` does); 16-bit and float images are scaled to 8 bits; CMYK
//! JPEGs are converted by the decoder. Images over [`MAX_IMAGE_SIDE`] pixels on a side or
//! needing more than [`MAX_DECODE_ALLOC`] bytes are refused, against decompression bombs.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, RgbImage};

/// Largest width or height accepted by the decoder.
pub const MAX_IMAGE_SIDE: u32 = 32_768;

/// Largest decoder allocation, in bytes.
pub const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// Decodes an image file to 8-bit RGB.
///
/// # Errors
///
/// A message saying why the file could not be read or decoded.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    decode_rgb_bytes(&bytes)
}

/// Decodes encoded image bytes to 8-bit RGB.
///
/// # Errors
///
/// A message saying why the bytes could not be decoded (empty, truncated, unknown format,
/// too large).
pub fn decode_rgb_bytes(bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    check_jpeg_complete(bytes)?;
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let orientation = decoder
        .orientation()
        .map_err(|e| format!("cannot read the orientation: {e}"))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    image.apply_orientation(orientation);
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Refuses a JPEG that ends before its end-of-image marker: a truncated file, which the
/// decoder would otherwise complete with gray blocks. Walks the marker segments from the
/// start (inside a scan's entropy-coded data every 0xFF is followed by 0x00 or a restart
/// marker), so whatever follows the end of the image (a trailer, an appended video, MPF
/// images) is left alone. Bytes that do not look like a JPEG's structure are left to the
/// decoder to judge.
fn check_jpeg_complete(b: &[u8]) -> Result<(), String> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    let truncated = || {
        Err(format!(
            "cannot decode: truncated JPEG (its {} bytes end before the end-of-image marker)",
            b.len()
        ))
    };
    let mut i = 2;
    loop {
        match b.get(i) {
            None => return truncated(),
            Some(0xFF) => {}
            Some(_) => return Ok(()),
        }
        while b.get(i) == Some(&0xFF) {
            i += 1; // fill bytes before a marker code
        }
        let Some(&code) = b.get(i) else {
            return truncated();
        };
        i += 1;
        match code {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => continue, // markers without a segment
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
        else {
            return truncated();
        };
        if len < 2 {
            return Ok(());
        }
        i += len;
        if i > b.len() {
            return truncated();
        }
        if code == 0xDA {
            // Entropy-coded data runs to the next marker that is not a restart.
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(0xFF), Some(next)) if *next != 0 && !(0xD0..=0xD7).contains(next) => {
                        break
                    }
                    (Some(_), Some(_)) => i += 1,
                    _ => return truncated(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(image: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn empty_and_garbage_bytes_fail_with_a_reason() {
        assert_eq!(decode_rgb_bytes(b"").unwrap_err(), "empty file (0 bytes)");
        assert!(decode_rgb_bytes(b"this is not an image")
            .unwrap_err()
            .starts_with("cannot"));
    }

    #[test]
    fn gray_alpha_and_16_bit_images_become_rgb8() {
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([77])));
        let rgb = decode_rgb_bytes(&encode(gray, image::ImageFormat::Png)).unwrap();
        assert_eq!(rgb.get_pixel(2, 1).0, [77, 77, 77]);

        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]));
        let rgb = decode_rgb_bytes(&encode(
            DynamicImage::ImageRgba8(rgba),
            image::ImageFormat::Png,
        ))
        .unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 20, 30]);

        let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
            2,
            2,
            image::Rgb([65535, 0, 32896]),
        );
        let rgb = decode_rgb_bytes(&encode(
            DynamicImage::ImageRgb16(deep),
            image::ImageFormat::Png,
        ))
        .unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [255, 0, 128]);
    }

    #[test]
    fn a_truncated_jpeg_is_refused_and_a_complete_one_with_a_trailer_is_not() {
        let mut rgb = image::RgbImage::new(64, 48);
        for (x, y, p) in rgb.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]);
        }
        let jpeg = encode(DynamicImage::ImageRgb8(rgb), image::ImageFormat::Jpeg);
        assert!(decode_rgb_bytes(&jpeg).is_ok());
        for cut in [jpeg.len() - 2, jpeg.len() * 2 / 3, 300, 3] {
            let err = decode_rgb_bytes(&jpeg[..cut]).unwrap_err();
            assert!(
                err.starts_with("cannot decode: truncated JPEG"),
                "{cut}: {err}"
            );
        }
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"camera trailer \xFF\xDA after the end");
        assert_eq!(
            decode_rgb_bytes(&trailer).unwrap(),
            decode_rgb_bytes(&jpeg).unwrap()
        );
    }

    #[test]
    fn a_format_this_build_does_not_decode_is_refused_by_name() {
        // A BMP header is recognised, but the bmp decoder is not built in.
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 60]);
        let err = decode_rgb_bytes(&bmp).unwrap_err();
        assert!(
            err.starts_with("cannot decode") && err.contains("Bmp"),
            "{err}"
        );
    }

    #[test]
    fn images_over_the_side_limit_are_refused() {
        // A PNG header that claims 40000 x 1 pixels.
        let tall = DynamicImage::ImageLuma8(image::GrayImage::new(MAX_IMAGE_SIDE + 1, 1));
        let err = decode_rgb_bytes(&encode(tall, image::ImageFormat::Png)).unwrap_err();
        assert!(err.contains("limit"), "{err}");
    }
}
