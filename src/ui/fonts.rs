//! A system font for the scripts egui's bundled fonts lack. egui ships Latin, Greek, Cyrillic
//! and emoji glyphs only, so a table, column or value in Chinese, Japanese or Korean showed as
//! boxes in previews, the SQL console and on the canvas. The first font that exists and parses
//! among `MEDALLION_FALLBACK_FONT` and the systems' usual CJK fonts is added after egui's own
//! (used only for glyphs they lack). A file that does not parse is skipped: egui would panic on
//! it when laying out text.

use std::path::{Path, PathBuf};

use eframe::egui::{self, FontData, FontFamily};
use eframe::epaint::text::{FontInsert, FontPriority, InsertFontFamily};

/// A font file of one's own choosing (`.ttf`, `.otf`, or the first face of a `.ttc`).
pub const FONT_ENV: &str = "MEDALLION_FALLBACK_FONT";

/// Well-known CJK fonts and their face index: Debian/Ubuntu (WenQuanYi Micro Hei, 5 MB, from
/// `fonts-wqy-microhei`, which `scripts/setup.sh` installs: Chinese, kana and Hangul; Droid Sans
/// Fallback has no Hangul; Noto CJK), Fedora and Arch (Noto CJK), macOS, Windows.
const SYSTEM_FONTS: &[(&str, u32)] = &[
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 0),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 0),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 0),
    ("/System/Library/Fonts/Hiragino Sans GB.ttc", 0),
    ("/Library/Fonts/Arial Unicode.ttf", 0),
    ("C:\\Windows\\Fonts\\msyh.ttc", 0),
    ("C:\\Windows\\Fonts\\YuGothR.ttc", 0),
    ("C:\\Windows\\Fonts\\malgun.ttf", 0),
];

/// Adds the first usable fallback font to `ctx`'s fonts (a ~5 ms read of WenQuanYi's 5 MB at
/// start); none when no candidate is there.
pub fn install_fallback(ctx: &egui::Context) {
    let own = std::env::var_os(FONT_ENV).map(|p| (PathBuf::from(p), 0));
    let system = SYSTEM_FONTS.iter().map(|&(p, i)| (PathBuf::from(p), i));
    let Some((_, data)) = first_usable(own.into_iter().chain(system)) else { return };
    let families = [FontFamily::Proportional, FontFamily::Monospace]
        .into_iter()
        .map(|family| InsertFontFamily { family, priority: FontPriority::Lowest })
        .collect();
    ctx.add_font(FontInsert::new("medallion-fallback", data, families));
}

/// The first of `candidates` (a path and a face index) that can be read and parses as a font.
fn first_usable(
    candidates: impl IntoIterator<Item = (PathBuf, u32)>,
) -> Option<(PathBuf, FontData)> {
    candidates.into_iter().find_map(|(path, index)| {
        let data = load(&path, index)?;
        Some((path, data))
    })
}

fn load(path: &Path, index: u32) -> Option<FontData> {
    let bytes = std::fs::read(path).ok()?;
    // the same check egui makes (which panics on a failure)
    skrifa::FontRef::from_index(&bytes, index).ok()?;
    let mut data = FontData::from_owned(bytes);
    data.index = index;
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file and one that is not a font are passed over (egui would panic on the
    /// latter), and so is a face index the file does not have; the first real font is taken.
    /// (That the app then has CJK glyphs: `chinese_japanese_and_korean_text_have_glyphs`.)
    #[test]
    fn the_first_readable_font_is_taken_and_broken_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("not_a_font.ttf");
        std::fs::write(&garbage, b"definitely not a font, 0123456789".repeat(100)).unwrap();
        let missing = dir.path().join("フォント/missing.ttf");
        assert!(first_usable([(missing.clone(), 0), (garbage.clone(), 0)]).is_none());

        // a real font: egui's own Latin one, written out
        let real = dir.path().join("real.ttf");
        let bundled = egui::FontDefinitions::default();
        std::fs::write(&real, &*bundled.font_data["Ubuntu-Light"].font).unwrap();
        let (path, _) = first_usable([(missing, 0), (garbage, 0), (real.clone(), 0)]).unwrap();
        assert_eq!(path, real);
        // a face index past the file's faces is no font either
        assert!(first_usable([(real, 7)]).is_none());
    }
}
