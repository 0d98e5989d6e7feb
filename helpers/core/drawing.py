"""Text drawn on frames, shared by post-production (title cards, captions) and slide videos.

A font at any pixel size (captions: DejaVu Sans, which covers Latin, Greek, Cyrillic, Hebrew and Arabic;
a one-line note names any character it cannot draw, e.g. CJK), word wrap measured in pixels (linear in the text), a block of lines cut to fit
with "...", a caption on a translucent band, and the height of the random-weights stamp (so a caption
can sit above it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def load_font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (no font file needed, so it works everywhere)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one small bitmap font
        return ImageFont.load_default()


CAPTION_FONT = "fonts/ttf/DejaVuSans.ttf"  # inside matplotlib's mpl-data (a course requirement; on Colab too)
# Hebrew, Arabic, Syriac, Thaana, NKo, ...: joined and right to left only with libraqm. Pillow's wheels carry
# raqm and load the system's libfribidi at run time (python-pillow/Pillow#5062, pillow-wheels#181): without
# it, PIL.features.check("raqm") is False and the letters come out unjoined, left to right (script_note says so).
RIGHT_TO_LEFT = ("\u0590", "\u08ff")


def caption_font(size: int):
    """DejaVu Sans at ``size`` pixels, from matplotlib's own data (no download); Pillow's font without it."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / CAPTION_FONT), size)
    except (ImportError, OSError):
        return load_font(size)


def _mask(font, char: str) -> tuple:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def undrawable(text: str, font) -> list[str]:
    """The distinct characters of ``text`` that ``font`` has no glyph for (drawn as its empty box), in order."""
    box = _mask(font, "\U0010FFFD")  # a private-use code point: no font draws it, so this is the box
    return [char for char in dict.fromkeys(text) if not char.isspace() and _mask(font, char) == box]


def script_note(text: str, font) -> str:
    """One line about what of ``text`` cannot be drawn as written; empty when all of it can."""
    from PIL import features

    notes = []
    missing = undrawable(text, font)
    if missing:
        shown = " ".join(missing[:12]) + (" ..." if len(missing) > 12 else "")
        notes.append(f"{len(missing)} character(s) cannot be drawn with {getattr(font, 'getname', lambda: ('this font',))()[0]} "
                     f"and show as boxes: {shown} (Chinese, Japanese, Korean and emoji need a font of their own)")
    if any(RIGHT_TO_LEFT[0] <= char <= RIGHT_TO_LEFT[1] for char in text) and not features.check("raqm"):
        notes.append("Hebrew/Arabic letters are drawn unjoined and left to right: this Pillow has no libraqm")
    return "; ".join(notes)


class _Widths:
    """Text widths in pixels for one font, each distinct word or character measured once."""

    def __init__(self, font):
        self.font = font
        self._measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
        self._cache: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        if text not in self._cache:
            self._cache[text] = self._measure(text, font=self.font)
        return self._cache[text]

    def longest_prefix(self, word: str, max_width: float) -> int:
        """How many leading characters of ``word`` fit in ``max_width`` (at least 1), from per-character
        widths (one pass, no re-measuring of prefixes)."""
        total, cut = 0.0, 0
        for char in word:
            total += self(char)
            if total > max_width:
                break
            cut += 1
        return max(1, cut)


def wrap_text(text: str, font, max_width: float, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap to ``max_width`` pixels; explicit newlines kept; over-long words split.

    Linear in the length of ``text``: every word is measured once and a line's width is the sum of
    its words and spaces; an over-long word is cut by per-character widths. With ``max_lines``,
    wrapping stops after ``max_lines + 1`` lines (enough to know the text did not fit).
    """
    width = _Widths(font)
    space = width(" ")
    lines: list[str] = []

    def full() -> bool:
        return max_lines is not None and len(lines) > max_lines

    for paragraph in text.splitlines() or [""]:
        line, line_width = "", 0.0
        for word in paragraph.split():
            while len(word) > 1 and not full():  # a word wider than the frame is cut where it overflows
                cut = width.longest_prefix(word, max_width)
                if cut >= len(word) and width(word) <= max_width:
                    break
                cut = min(cut, len(word) - 1)
                if line:
                    lines.append(line)
                    line, line_width = "", 0.0
                lines.append(word[:cut])
                word = word[cut:]
            if full():
                return lines
            word_width = width(word)
            if not line:
                line, line_width = word, word_width
            elif line_width + space + word_width <= max_width:
                line, line_width = f"{line} {word}", line_width + space + word_width
            else:
                lines.append(line)
                line, line_width = word, word_width
        lines.append(line)
        if full():
            return lines
    return lines


def fit_lines(lines: list[str], font, max_width: float, max_lines: int) -> tuple[list[str], bool]:
    """At most ``max_lines`` lines; when there were more, the last one ends in "..." (and fits)."""
    if len(lines) <= max_lines:
        return lines, False
    width = _Widths(font)
    last = f"{lines[max_lines - 1]} {lines[max_lines]}".strip()  # the line that stays, and a little more
    last = last[:width.longest_prefix(last, max_width - width("..."))]
    while last and width(last.rstrip() + "...") > max_width:  # kerning: at most a few characters
        last = last[:-1]
    return lines[:max_lines - 1] + [last.rstrip() + "..."], True


@dataclass
class CaptionLayer:
    """A caption drawn once, pasted onto every frame of its slide."""

    image: Image.Image | None         # RGBA, transparent except the band and the text
    lines: list[str] = field(default_factory=list)
    font_size: int = 0
    shortened: bool = False           # True when the caption did not fit and was cut with "..."
    note: str = ""                    # characters that cannot be drawn (script_note); empty when none

    def apply(self, frame: Image.Image) -> Image.Image:
        if self.image is None:
            return frame
        return Image.alpha_composite(frame.convert("RGBA"), self.image).convert("RGB")


def caption_layer(text: str, size: tuple[int, int], bottom: int = 0, max_lines: int = 3,
                  band_opacity: float = 0.62) -> CaptionLayer:
    """Draw ``text`` wrapped, in white on a dark translucent band near the bottom of a ``size`` frame.

    The font scales with the frame height (about 1/13 of it, at least 9 px). If the text needs
    more than ``max_lines`` lines the font shrinks down to 70 %, then the last line is cut with
    "...". ``bottom`` keeps that many pixels free at the bottom (e.g. for the random-weights stamp).
    """
    text = text.strip()
    if not text:
        return CaptionLayer(None)
    width, height = size
    base = max(9, round(height / 13))
    pad = max(2, base // 3)
    for font_size in range(base, max(8, int(base * 0.7)) - 1, -1):
        font = caption_font(font_size)
        lines = wrap_text(text, font, width - 4 * pad, max_lines=max_lines)
        if len(lines) <= max_lines:
            break
    lines, shortened = fit_lines(lines, font, width - 4 * pad, max_lines)
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (font_size, 0)
    line_height = ascent + descent + max(1, font_size // 6)
    band_height = len(lines) * line_height + 2 * pad
    band_bottom = height - bottom
    band_top = max(0, band_bottom - band_height)
    draw.rectangle([0, band_top, width, band_bottom], fill=(0, 0, 0, round(255 * band_opacity)))
    y = band_top + pad
    for line in lines:
        line_width = draw.textlength(line, font=font)
        draw.text(((width - line_width) / 2, y), line, font=font, fill=(255, 255, 255, 255))
        y += line_height
    return CaptionLayer(layer, lines, font_size, shortened, script_note(text, font))
