//! Text in: glyphs rendered with fontdue, black on white, centred, auto-sized to fit, wrapped on words.
use fontdue::layout::{
    CoordinateSystem, HorizontalAlign, Layout, LayoutSettings, TextStyle, VerticalAlign, WrapStyle,
};
use fontdue::{Font, FontSettings};
use image::{Rgb, RgbImage};

use super::{RenderError, TextSettings};

/// The embedded default font: NanumSquareR (SIL OFL 1.1), Latin and all Hangul syllables.
pub const DEFAULT_FONT_NAME: &str = "NanumSquareR";
pub static DEFAULT_FONT: &[u8] = include_bytes!("../../assets/fonts/NanumSquareR.ttf");

/// Renders text to `size`×`size` images; holds the parsed font.
pub struct TextRenderer {
    size: u32,
    settings: TextSettings,
    font: Font,
}

impl TextRenderer {
    /// A renderer with the embedded default font.
    pub fn new(size: u32, settings: &TextSettings) -> Result<Self, RenderError> {
        Self::with_font_bytes(size, settings, DEFAULT_FONT, DEFAULT_FONT_NAME)
    }

    /// A renderer with another font (the export step varies fonts in training; the device uses the default).
    pub fn with_font_bytes(
        size: u32,
        settings: &TextSettings,
        bytes: &[u8],
        name: &str,
    ) -> Result<Self, RenderError> {
        let font = Font::from_bytes(bytes, FontSettings::default())
            .map_err(|e| RenderError::Font(name.to_string(), e.to_string()))?;
        Ok(Self {
            size,
            settings: settings.clone(),
            font,
        })
    }

    /// The text with whitespace runs collapsed to one space and trimmed: what is actually drawn.
    pub fn normalise(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Characters of `text` the font has no glyph for (whitespace excepted), each once, in order.
    pub fn missing_glyphs(&self, text: &str) -> Vec<char> {
        let mut missing: Vec<char> = Vec::new();
        for c in text.chars().filter(|c| !c.is_whitespace()) {
            if self.font.lookup_glyph_index(c) == 0 && !missing.contains(&c) {
                missing.push(c);
            }
        }
        missing
    }

    pub fn render(&self, text: &str) -> Result<RgbImage, RenderError> {
        let chars = text.chars().count();
        if chars > self.settings.max_chars {
            return Err(RenderError::TextTooLong {
                chars,
                limit: self.settings.max_chars,
            });
        }
        let text = Self::normalise(text);
        if text.is_empty() {
            return Err(RenderError::EmptyText);
        }
        let missing = self.missing_glyphs(&text);
        if !missing.is_empty() {
            return Err(RenderError::MissingGlyphs(missing));
        }
        let size = self.size as f32;
        let margin = (size * self.settings.margin).round();
        let inner = size - 2.0 * margin;
        let mut layout: Layout = Layout::new(CoordinateSystem::PositiveYDown);
        // The largest glyph size, in whole pixels, at which the wrapped text fits the inner box — first
        // with every word whole (when `keep_words`), then, for a single word too long for any line,
        // allowing breaks inside words.
        let top = (size * self.settings.max_px)
            .floor()
            .max(self.settings.min_px);
        let passes: &[bool] = if self.settings.keep_words {
            &[true, false]
        } else {
            &[false]
        };
        let fitted = passes.iter().any(|&whole_words| {
            let mut px = top;
            while px >= self.settings.min_px {
                self.lay_out(&mut layout, &text, px, margin, inner);
                if self.fits(&layout, margin, inner)
                    && (!whole_words || !breaks_inside_a_word(&layout))
                {
                    return true;
                }
                px -= 1.0;
            }
            false
        });
        if !fitted {
            return Err(RenderError::TextDoesNotFit {
                size: self.size,
                min_px: self.settings.min_px,
            });
        }
        let mut img = RgbImage::from_pixel(self.size, self.size, Rgb([255, 255, 255]));
        for glyph in layout.glyphs() {
            if glyph.width == 0 || glyph.height == 0 {
                continue;
            }
            let (metrics, coverage) = self.font.rasterize_config(glyph.key);
            let x0 = glyph.x.round() as i64;
            let y0 = glyph.y.round() as i64;
            for gy in 0..metrics.height {
                for gx in 0..metrics.width {
                    let (x, y) = (x0 + gx as i64, y0 + gy as i64);
                    if x < 0 || y < 0 || x >= self.size as i64 || y >= self.size as i64 {
                        continue;
                    }
                    let c = coverage[gy * metrics.width + gx];
                    let p = img.get_pixel_mut(x as u32, y as u32);
                    let v = p[0].min(255 - c);
                    *p = Rgb([v, v, v]);
                }
            }
        }
        Ok(img)
    }

    fn lay_out(&self, layout: &mut Layout, text: &str, px: f32, margin: f32, inner: f32) {
        layout.reset(&LayoutSettings {
            x: margin,
            y: margin,
            max_width: Some(inner),
            max_height: Some(inner),
            horizontal_align: HorizontalAlign::Center,
            vertical_align: VerticalAlign::Middle,
            line_height: self.settings.line_height,
            wrap_style: WrapStyle::Word,
            wrap_hard_breaks: true,
        });
        layout.append(&[&self.font], &TextStyle::new(text, px, 0));
    }

    /// Every glyph inside the inner box, and the lines no taller than it.
    fn fits(&self, layout: &Layout, margin: f32, inner: f32) -> bool {
        if layout.height() > inner + 0.5 {
            return false;
        }
        let (lo, hi) = (margin - 0.5, margin + inner + 0.5);
        layout.glyphs().iter().all(|g| {
            g.width == 0
                || (g.x >= lo
                    && g.x + g.width as f32 <= hi
                    && g.y >= lo
                    && g.y + g.height as f32 <= hi)
        })
    }
}

/// Whether the layout wrapped a line anywhere but at a space.
fn breaks_inside_a_word(layout: &Layout) -> bool {
    let glyphs = layout.glyphs();
    layout.lines().is_some_and(|lines| {
        lines.iter().skip(1).any(|line| {
            let first = line.glyph_start;
            first > 0
                && first < glyphs.len()
                && !glyphs[first - 1].parent.is_whitespace()
                && !glyphs[first].parent.is_whitespace()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer(size: u32) -> TextRenderer {
        TextRenderer::new(size, &TextSettings::default()).unwrap()
    }

    fn ink(img: &RgbImage) -> usize {
        img.pixels().filter(|p| p[0] < 128).count()
    }

    /// Bounding box of the ink: (min x, min y, max x, max y).
    fn ink_box(img: &RgbImage) -> (u32, u32, u32, u32) {
        let mut b = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in img.enumerate_pixels() {
            if p[0] < 128 {
                b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
            }
        }
        b
    }

    #[test]
    fn latin_and_hangul_render_with_ink() {
        let r = renderer(96);
        for t in ["tiger", "호랑이", "호랑이 tiger"] {
            let img = r.render(t).unwrap();
            assert_eq!(img.dimensions(), (96, 96));
            assert!(ink(&img) > 50, "{t}: {}", ink(&img));
        }
    }

    #[test]
    fn text_is_centred() {
        let img = renderer(96).render("bee").unwrap();
        let (x0, y0, x1, y1) = ink_box(&img);
        let (cx, cy) = ((x0 + x1) as f32 / 2.0, (y0 + y1) as f32 / 2.0);
        assert!(
            (cx - 47.5).abs() < 4.0 && (cy - 47.5).abs() < 8.0,
            "{cx},{cy}"
        );
    }

    #[test]
    fn long_text_wraps_and_shrinks_but_stays_inside() {
        let r = renderer(96);
        let short = r.render("cat").unwrap();
        let long = r.render("where is the pickup truck parked today").unwrap();
        let (x0, y0, x1, y1) = ink_box(&long);
        assert!(
            x0 >= 4 && y0 >= 4 && x1 <= 91 && y1 <= 91,
            "{x0},{y0},{x1},{y1}"
        );
        // Several lines: ink spans much more height than one line of the short word.
        let short_h = ink_box(&short).3 - ink_box(&short).1;
        assert!(y1 - y0 > short_h, "no wrap: {} vs {short_h}", y1 - y0);
    }

    /// Regression: "umbrella" was drawn as "umbr / ella" because a too-wide word was wrapped mid-word
    /// instead of being drawn smaller.
    #[test]
    fn words_are_shrunk_not_broken_mid_word() {
        let r = renderer(96);
        let mut layout: Layout = Layout::new(CoordinateSystem::PositiveYDown);
        for word in ["umbrella", "motorcycle", "hippopotamus", "Where's the car"] {
            let img = r.render(word).unwrap();
            // One line of ink for a single word: its ink is much wider than tall.
            let (x0, y0, x1, y1) = ink_box(&img);
            if !word.contains(' ') {
                assert!(
                    x1 - x0 > 2 * (y1 - y0),
                    "{word}: looks wrapped ({x0},{y0},{x1},{y1})"
                );
            }
            r.lay_out(&mut layout, word, 12.0, 6.0, 84.0);
            assert!(!breaks_inside_a_word(&layout), "{word}");
        }
        // Old contracts (no keep_words) keep the old pixels.
        let old = TextRenderer::new(
            96,
            &TextSettings {
                keep_words: false,
                ..TextSettings::default()
            },
        )
        .unwrap();
        let (x0, y0, x1, y1) = ink_box(&old.render("umbrella").unwrap());
        assert!(
            x1 - x0 < 2 * (y1 - y0),
            "old layout changed: ({x0},{y0},{x1},{y1})"
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let r = renderer(64);
        assert_eq!(r.render("tulip").unwrap(), r.render("tulip").unwrap());
        assert_eq!(r.render("  tulip \n").unwrap(), r.render("tulip").unwrap());
    }

    #[test]
    fn uncovered_characters_are_reported_not_panicked() {
        let err = renderer(96).render("tiger 🐯").unwrap_err();
        match &err {
            RenderError::MissingGlyphs(c) => assert_eq!(c, &vec!['🐯']),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("U+1F42F"), "{err}");
    }

    #[test]
    fn empty_and_oversized_text_are_errors() {
        let r = renderer(96);
        assert!(matches!(r.render("  \t"), Err(RenderError::EmptyText)));
        assert!(matches!(
            r.render(&"a".repeat(1000)),
            Err(RenderError::TextTooLong { .. })
        ));
        let unbreakable = "W".repeat(250);
        assert!(matches!(
            r.render(&unbreakable),
            Err(RenderError::TextDoesNotFit { .. })
        ));
    }
}
