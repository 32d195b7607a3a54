//! The answer as a picture: the question as the model saw it, beside the memories it matched, each with a
//! caption, on a green (found) or grey (not in memory) frame.
use std::path::{Path, PathBuf};

use image::{imageops, Rgb, RgbImage};

use super::Answer;
use crate::render::{Renderer, TextRenderer};

/// Tile size in the answer picture, pixels; also the size captions are rendered at.
pub const TILE: u32 = 160;
const GAP: u32 = 8;

/// Question and memories in a row, captions under them; a red bar marks "not in memory".
fn compose(tiles: &[RgbImage], captions: &[RgbImage], not_in_memory: bool) -> RgbImage {
    let n = tiles.len().max(1) as u32;
    let width = n * TILE + (n + 1) * GAP;
    let caption_h = TILE / 2;
    let height = TILE + caption_h + 3 * GAP + GAP;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let bar = if not_in_memory {
        Rgb([200, 40, 40])
    } else {
        Rgb([40, 160, 70])
    };
    for x in 0..width {
        for y in 0..GAP / 2 {
            canvas.put_pixel(x, y, bar);
        }
    }
    for (i, tile) in tiles.iter().enumerate() {
        let x = GAP + i as u32 * (TILE + GAP);
        let scaled = imageops::resize(tile, TILE, TILE, imageops::FilterType::Triangle);
        imageops::replace(&mut canvas, &scaled, x as i64, (GAP * 2) as i64);
        if let Some(c) = captions.get(i) {
            let fitted = fit_caption(c, TILE, caption_h);
            let dx = (TILE - fitted.width()) / 2;
            imageops::replace(
                &mut canvas,
                &fitted,
                (x + dx) as i64,
                (TILE + 3 * GAP) as i64,
            );
        }
    }
    // A divider between the question and the memories.
    if tiles.len() > 1 {
        let x = GAP + TILE + GAP / 2;
        for y in GAP * 2..GAP * 2 + TILE {
            canvas.put_pixel(x, y, Rgb([120, 120, 120]));
        }
    }
    canvas
}

/// The inked rows of a square caption, scaled down (never up) to fit `w × h`.
fn fit_caption(caption: &RgbImage, w: u32, h: u32) -> RgbImage {
    let inked = |y: u32| (0..caption.width()).any(|x| caption.get_pixel(x, y).0[0] < 200);
    let top = (0..caption.height()).find(|&y| inked(y)).unwrap_or(0);
    let bottom = (0..caption.height()).rev().find(|&y| inked(y)).unwrap_or(0);
    if bottom < top {
        return RgbImage::from_pixel(1, 1, Rgb([255, 255, 255]));
    }
    let band = imageops::crop_imm(caption, 0, top, caption.width(), bottom - top + 1).to_image();
    let scale = (w as f32 / band.width() as f32)
        .min(h as f32 / band.height() as f32)
        .min(1.0);
    let (bw, bh) = (
        ((band.width() as f32 * scale) as u32).max(1),
        ((band.height() as f32 * scale) as u32).max(1),
    );
    if (bw, bh) == band.dimensions() {
        band
    } else {
        imageops::resize(&band, bw, bh, imageops::FilterType::Triangle)
    }
}

fn missing_tile(size: u32) -> RgbImage {
    let mut tile = RgbImage::from_pixel(size, size, Rgb([220, 220, 220]));
    for i in 0..size {
        tile.put_pixel(i, i, Rgb([150, 150, 150]));
        tile.put_pixel(size - 1 - i, i, Rgb([150, 150, 150]));
    }
    tile
}

/// The answer picture's path for answer `n`: `%n` (or `{n}`) in `template` becomes `n`.
pub fn answer_picture_path(template: &std::path::Path, n: usize) -> PathBuf {
    let n = n.to_string();
    PathBuf::from(
        template
            .to_string_lossy()
            .replace("%n", &n)
            .replace("{n}", &n),
    )
}

/// The picture of one answer: `question` (the rendered question) first, captioned `heard` or `typed`,
/// then each hit's memory picture (a blank tile when it cannot be read) with its label and score.
pub fn answer_picture(
    renderer: &Renderer,
    captioner: &TextRenderer,
    answer: &Answer,
    question: &RgbImage,
    typed: bool,
) -> RgbImage {
    let mut tiles = vec![question.clone()];
    let mut captions = vec![if typed {
        "typed".to_string()
    } else {
        "heard".to_string()
    }];
    for hit in &answer.hits {
        let tile = renderer
            .image_file(Path::new(&hit.path))
            .unwrap_or_else(|_| missing_tile(renderer.size()));
        tiles.push(tile);
        captions.push(format!("{} {:.2}", hit.label, hit.score));
    }
    let caption_tiles: Vec<RgbImage> = captions
        .iter()
        .map(|c| {
            captioner
                .render(c)
                .unwrap_or_else(|_| RgbImage::from_pixel(TILE, TILE, Rgb([255, 255, 255])))
        })
        .collect();
    compose(&tiles, &caption_tiles, answer.not_in_memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_picture_path_numbers_percent_n_and_the_older_braces() {
        let p = |t: &str, n| answer_picture_path(std::path::Path::new(t), n);
        assert_eq!(p("out/a_%n.png", 7), PathBuf::from("out/a_7.png"));
        assert_eq!(p("out/a_{n}.png", 12), PathBuf::from("out/a_12.png"));
        assert_eq!(p("answer.png", 3), PathBuf::from("answer.png"));
    }

    #[test]
    fn the_picture_has_a_tile_per_hit_plus_the_question() {
        let tile = RgbImage::from_pixel(32, 32, Rgb([0, 0, 0]));
        let pic = compose(&[tile.clone(), tile.clone(), tile], &[], false);
        assert_eq!(pic.width(), 3 * TILE + 4 * GAP);
        assert_eq!(*pic.get_pixel(GAP + 1, GAP * 2 + 1), Rgb([0, 0, 0]));
        assert_eq!(*pic.get_pixel(0, 0), Rgb([40, 160, 70]));
    }
}
