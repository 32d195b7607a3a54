"""The three modalities and the dataset's evaluation-only splits (what each holds, and how the
model card titles and introduces it): shared by training, evaluation and the model card."""

MODALITIES = ("image", "text", "audio")
# Evaluation-only splits of the builder: typed questions in fonts and spoken ones from
# synthesizers never used in training, recorded people, held-out photographs and clip art; each
# with the row key that names its subsets.
OTHER_SPLITS = {
    "other_text": "font",
    "other_audio": "voice",
    "human_audio": "word",
    "photo_image": "class",
    "clipart_image": "class",
}
OTHER_TITLES = {
    "other_text": "text, other fonts (never in training)",
    "other_audio": "audio, other synthesizers (never in training)",
    "human_audio": "audio, recorded human speaker (never in training)",
    "photo_image": "photographs (held out) → class",
    "clipart_image": "clip art (held out) → class",
}
# Splits whose most likely class is also counted per this row key (one line each in the card).
CLASSIFIER_SUBSETS = {"human_audio": "speaker"}
OTHER_INTROS = {
    "other_text": "Typed questions in fonts never used in training (Liberation Sans, Serif, "
    "Mono and Sans Italic, Noto Serif; Korean in Nanum Myeongjo and Barun Gothic), by font.",
    "other_audio": "Spoken questions from other synthesizers (flite's voices, festival's kal; "
    "the same kind of phrases, half mildly augmented), by voice.",
    "human_audio": "English recordings of people naming a class: KTuberling's bare words and "
    'Tux Paint\'s spoken stamp names ("A tiger."), by word.',
    "photo_image": "GCompris photographs and Tux Paint photo stamps never trained on (GCompris' "
    "two 'explore animals' activities, every fourth other photo of a class, every fourth Tux "
    "Paint photo), matched against the evaluation pictures, by class.",
    "clipart_image": "openclipart pictures never trained on (every fourth of a class), matched "
    "against the evaluation pictures, by class.",
}
