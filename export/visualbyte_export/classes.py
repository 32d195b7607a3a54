"""The classes VisualByte learns, their names, and the words that must never match one.

Three groups:

- ``cifar``: CIFAR-100 classes that have an emoji drawn by every vendor we use. Pictures come from
  the emoji sets (CIFAR itself cannot be downloaded here). English and Korean names. Where CIFAR's
  name is not what people say (``cattle``, ``chimpanzee``, ``sweet_pepper``, ``streetcar``), the
  spoken name is used and the CIFAR name is kept in :attr:`ClassSpec.cifar`. ``aquarium_fish`` and
  ``trout`` are one class (``fish``): "fish" and "aquarium fish" cannot be told apart by a listener.
- ``emoji``: more everyday objects, animals and food from the emoji sets. English names only.
- ``fashion``: the 10 Fashion-MNIST classes (real photographs). English names only. No emoji class
  may overlap them (no shirts, shoes, bags, dresses or coats among the emoji classes).

Emoji are named by their ``short_name`` in ``emoji-datasource`` (``emoji.json``); the builder
resolves them to code points and to the file of every vendor style.

``python -m visualbyte_export data --classes-only --out DIR`` writes ``DIR/classes.csv``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

GROUPS = ("cifar", "emoji", "fashion")


@dataclass(frozen=True)
class ClassSpec:
    key: str  # stable identifier, ASCII snake_case
    en: str  # spoken / typed English name
    group: str  # "cifar" | "emoji" | "fashion"
    ko: str | None = None  # Korean name (cifar group)
    emoji: tuple[str, ...] = ()  # emoji-datasource short names whose pictures show the class
    fashion_label: int | None = None  # Fashion-MNIST label
    cifar: tuple[str, ...] = ()  # CIFAR-100 class name(s) this class stands for
    number: str = "one"  # "one" (a tiger), "plural" (trousers), "mass" (bread)
    en_aliases: tuple[str, ...] = ()  # other names people use ("bike", "TV"); must be unambiguous
    ko_aliases: tuple[str, ...] = ()


def _c(key, en, ko, emoji, cifar=None, number="one", en_aliases=(), ko_aliases=()):
    return ClassSpec(
        key=key,
        en=en,
        group="cifar",
        ko=ko,
        emoji=tuple(emoji.split()),
        cifar=tuple((cifar or key).split()),
        number=number,
        en_aliases=tuple(en_aliases),
        ko_aliases=tuple(ko_aliases),
    )


def _e(key, en, emoji, number="one", en_aliases=()):
    return ClassSpec(
        key=key,
        en=en,
        group="emoji",
        emoji=tuple(emoji.split()),
        number=number,
        en_aliases=tuple(en_aliases),
    )


def _f(key, en, label, number="one", en_aliases=()):
    return ClassSpec(
        key=key,
        en=en,
        group="fashion",
        fashion_label=label,
        number=number,
        en_aliases=tuple(en_aliases),
    )


# CIFAR-100 classes with an emoji match. Not matched (no emoji, or only a loose one): flatfish,
# forest, lamp, lawn_mower, maple_tree, orchid, plain, poppy, porcupine, possum, ray, shrew, table,
# tank, wardrobe, willow_tree.
CIFAR = [
    _c("apple", "apple", "사과", "apple green_apple"),
    _c("fish", "fish", "물고기", "fish tropical_fish", cifar="aquarium_fish trout"),
    _c("baby", "baby", "아기", "baby"),
    _c("bear", "bear", "곰", "bear"),
    _c("beaver", "beaver", "비버", "beaver"),
    _c("bed", "bed", "침대", "bed"),
    _c("bee", "bee", "벌", "bee", ko_aliases=("꿀벌",)),
    _c("beetle", "beetle", "딱정벌레", "beetle"),
    _c("bicycle", "bicycle", "자전거", "bike", en_aliases=("bike",)),
    _c("bottle", "bottle", "병", "champagne lotion_bottle baby_bottle"),
    _c("bowl", "bowl", "그릇", "bowl_with_spoon"),
    _c("boy", "boy", "소년", "boy", ko_aliases=("남자아이",)),
    _c("bridge", "bridge", "다리", "bridge_at_night"),
    _c("bus", "bus", "버스", "bus oncoming_bus"),
    _c("butterfly", "butterfly", "나비", "butterfly"),
    _c("camel", "camel", "낙타", "dromedary_camel camel"),
    _c("can", "can", "캔", "canned_food", ko_aliases=("통조림",)),
    _c("castle", "castle", "성", "european_castle japanese_castle"),
    _c("caterpillar", "caterpillar", "애벌레", "bug"),
    _c("cow", "cow", "소", "cow2 cow", cifar="cattle"),
    _c("chair", "chair", "의자", "chair"),
    _c("monkey", "monkey", "원숭이", "monkey monkey_face", cifar="chimpanzee"),
    _c("clock", "clock", "시계", "mantelpiece_clock alarm_clock"),
    _c("cloud", "cloud", "구름", "cloud"),
    _c("cockroach", "cockroach", "바퀴벌레", "cockroach"),
    _c("couch", "couch", "소파", "couch_and_lamp", en_aliases=("sofa",)),
    _c("crab", "crab", "게", "crab", ko_aliases=("꽃게",)),
    _c("crocodile", "crocodile", "악어", "crocodile"),
    _c("cup", "cup", "컵", "coffee tea cup_with_straw"),
    _c("dinosaur", "dinosaur", "공룡", "sauropod t-rex"),
    _c("dolphin", "dolphin", "돌고래", "dolphin"),
    _c("elephant", "elephant", "코끼리", "elephant"),
    _c("fox", "fox", "여우", "fox_face"),
    _c("girl", "girl", "소녀", "girl", ko_aliases=("여자아이",)),
    _c("hamster", "hamster", "햄스터", "hamster"),
    _c("house", "house", "집", "house house_with_garden"),
    _c("kangaroo", "kangaroo", "캥거루", "kangaroo"),
    _c("keyboard", "keyboard", "키보드", "keyboard"),
    _c("leopard", "leopard", "표범", "leopard"),
    _c("lion", "lion", "사자", "lion_face"),
    _c("lizard", "lizard", "도마뱀", "lizard"),
    _c("lobster", "lobster", "바닷가재", "lobster"),
    _c("man", "man", "남자", "man"),
    _c("motorcycle", "motorcycle", "오토바이", "racing_motorcycle", en_aliases=("motorbike",)),
    _c("mountain", "mountain", "산", "mountain snow_capped_mountain mount_fuji"),
    _c("mouse", "mouse", "쥐", "mouse2 mouse rat"),
    _c("mushroom", "mushroom", "버섯", "mushroom brown_mushroom"),
    _c("oak_tree", "oak tree", "참나무", "deciduous_tree"),
    _c("orange", "orange", "오렌지", "tangerine"),
    _c("otter", "otter", "수달", "otter"),
    _c("palm_tree", "palm tree", "야자수", "palm_tree"),
    _c("pear", "pear", "배", "pear"),
    _c("pine_tree", "pine tree", "소나무", "evergreen_tree"),
    _c("plate", "plate", "접시", "knife_fork_plate"),
    _c("rabbit", "rabbit", "토끼", "rabbit2 rabbit", en_aliases=("bunny",)),
    _c("raccoon", "raccoon", "너구리", "raccoon"),
    _c("road", "road", "도로", "motorway"),
    _c("rocket", "rocket", "로켓", "rocket"),
    _c("rose", "rose", "장미", "rose"),
    _c("sea", "sea", "바다", "ocean", en_aliases=("ocean",)),
    _c("seal", "seal", "물개", "seal"),
    _c("shark", "shark", "상어", "shark"),
    _c("skunk", "skunk", "스컹크", "skunk"),
    _c("skyscraper", "skyscraper", "고층 빌딩", "office cityscape"),
    _c("snail", "snail", "달팽이", "snail"),
    _c("snake", "snake", "뱀", "snake"),
    _c("spider", "spider", "거미", "spider"),
    _c("squirrel", "squirrel", "다람쥐", "chipmunk"),
    _c("tram", "tram", "트램", "tram train", cifar="streetcar", en_aliases=("streetcar",)),
    _c("sunflower", "sunflower", "해바라기", "sunflower"),
    _c("bell_pepper", "bell pepper", "피망", "bell_pepper", cifar="sweet_pepper"),
    _c("telephone", "telephone", "전화기", "phone telephone_receiver"),
    _c("television", "television", "텔레비전", "tv", en_aliases=("TV",), ko_aliases=("티비",)),
    _c("tiger", "tiger", "호랑이", "tiger2 tiger"),
    _c("tractor", "tractor", "트랙터", "tractor"),
    _c("train", "train", "기차", "train2 steam_locomotive bullettrain_side railway_car"),
    _c("tulip", "tulip", "튤립", "tulip"),
    _c("turtle", "turtle", "거북이", "turtle"),
    _c("whale", "whale", "고래", "whale2 whale"),
    _c("wolf", "wolf", "늑대", "wolf"),
    _c("woman", "woman", "여자", "woman"),
    _c("worm", "worm", "지렁이", "worm"),
]

EMOJI = [
    # animals
    _e("dog", "dog", "dog2 dog", en_aliases=("puppy",)),
    _e("cat", "cat", "cat2 cat", en_aliases=("kitten",)),
    _e("horse", "horse", "racehorse horse"),
    _e("pig", "pig", "pig2 pig"),
    _e("sheep", "sheep", "sheep"),
    _e("goat", "goat", "goat"),
    _e("chicken", "chicken", "chicken rooster", en_aliases=("hen",)),
    _e("duck", "duck", "duck"),
    _e("owl", "owl", "owl"),
    _e("eagle", "eagle", "eagle"),
    _e("penguin", "penguin", "penguin"),
    _e("frog", "frog", "frog"),
    _e("octopus", "octopus", "octopus"),
    _e("zebra", "zebra", "zebra_face"),
    _e("giraffe", "giraffe", "giraffe_face"),
    _e("gorilla", "gorilla", "gorilla"),
    _e("deer", "deer", "deer"),
    _e("bat", "bat", "bat"),
    _e("koala", "koala", "koala"),
    _e("panda", "panda", "panda_face"),
    _e("hedgehog", "hedgehog", "hedgehog"),
    _e("swan", "swan", "swan"),
    _e("parrot", "parrot", "parrot"),
    _e("flamingo", "flamingo", "flamingo"),
    _e("peacock", "peacock", "peacock"),
    _e("ant", "ant", "ant"),
    _e("scorpion", "scorpion", "scorpion"),
    _e("squid", "squid", "squid"),
    _e("shrimp", "shrimp", "shrimp"),
    _e("rhinoceros", "rhinoceros", "rhinoceros", en_aliases=("rhino",)),
    _e("hippopotamus", "hippopotamus", "hippopotamus", en_aliases=("hippo",)),
    _e("llama", "llama", "llama"),
    _e("sloth", "sloth", "sloth"),
    # food
    _e("banana", "banana", "banana"),
    _e("grapes", "grapes", "grapes", number="plural"),
    _e("watermelon", "watermelon", "watermelon"),
    _e("strawberry", "strawberry", "strawberry"),
    _e("cherry", "cherry", "cherries"),
    _e("lemon", "lemon", "lemon"),
    _e("pineapple", "pineapple", "pineapple"),
    _e("peach", "peach", "peach"),
    _e("carrot", "carrot", "carrot"),
    _e("corn", "corn", "corn", number="mass"),
    _e("broccoli", "broccoli", "broccoli", number="mass"),
    _e("tomato", "tomato", "tomato"),
    _e("potato", "potato", "potato"),
    _e("eggplant", "eggplant", "eggplant"),
    _e("avocado", "avocado", "avocado"),
    _e("bread", "bread", "bread", number="mass"),
    _e("cheese", "cheese", "cheese_wedge", number="mass"),
    _e("egg", "egg", "egg"),
    _e("pizza", "pizza", "pizza"),
    _e("hamburger", "hamburger", "hamburger", en_aliases=("burger",)),
    _e("hot_dog", "hot dog", "hotdog"),
    _e("cake", "cake", "cake"),
    _e("doughnut", "doughnut", "doughnut", en_aliases=("donut",)),
    _e("cookie", "cookie", "cookie"),
    _e("ice_cream", "ice cream", "icecream ice_cream", number="mass"),
    _e("taco", "taco", "taco"),
    _e("popcorn", "popcorn", "popcorn", number="mass"),
    _e("croissant", "croissant", "croissant"),
    _e("teapot", "teapot", "teapot"),
    # objects
    _e("guitar", "guitar", "guitar"),
    _e("violin", "violin", "violin"),
    _e("drum", "drum", "drum_with_drumsticks"),
    _e("trumpet", "trumpet", "trumpet"),
    _e("saxophone", "saxophone", "saxophone"),
    _e("umbrella", "umbrella", "umbrella closed_umbrella"),
    _e("scissors", "scissors", "scissors", number="plural"),
    _e("hammer", "hammer", "hammer"),
    _e("wrench", "wrench", "wrench"),
    _e("axe", "axe", "axe"),
    _e("ladder", "ladder", "ladder"),
    _e("key", "key", "key old_key"),
    _e("padlock", "padlock", "lock", en_aliases=("lock",)),
    _e("light_bulb", "light bulb", "bulb"),
    _e("candle", "candle", "candle"),
    _e("book", "book", "book closed_book"),
    _e("pencil", "pencil", "pencil2"),
    _e("envelope", "envelope", "envelope"),
    _e("glasses", "glasses", "eyeglasses", number="plural"),
    _e("hat", "hat", "tophat"),
    _e("crown", "crown", "crown"),
    _e("camera", "camera", "camera"),
    _e("laptop", "laptop", "computer"),
    _e("headphones", "headphones", "headphones", number="plural"),
    _e("microphone", "microphone", "microphone"),
    _e("radio", "radio", "radio"),
    _e("battery", "battery", "battery"),
    _e("magnet", "magnet", "magnet"),
    _e("microscope", "microscope", "microscope"),
    _e("telescope", "telescope", "telescope"),
    _e("compass", "compass", "compass"),
    _e("hourglass", "hourglass", "hourglass"),
    _e("balloon", "balloon", "balloon"),
    _e("gift", "gift", "gift", en_aliases=("present",)),
    _e("kite", "kite", "kite"),
    _e("trophy", "trophy", "trophy"),
    _e("soccer_ball", "soccer ball", "soccer", en_aliases=("football",)),
    _e("basketball", "basketball", "basketball"),
    _e("skateboard", "skateboard", "skateboard"),
    _e("toothbrush", "toothbrush", "toothbrush"),
    _e("broom", "broom", "broom"),
    _e("bucket", "bucket", "bucket"),
    _e("basket", "basket", "basket"),
    _e("knife", "knife", "knife"),
    _e("spoon", "spoon", "spoon"),
    _e("potted_plant", "potted plant", "potted_plant"),
    _e("cactus", "cactus", "cactus"),
    _e("bathtub", "bathtub", "bathtub"),
    _e("toilet", "toilet", "toilet"),
    _e("door", "door", "door"),
    _e("anchor", "anchor", "anchor"),
    # vehicles and places
    _e("car", "car", "car"),
    _e("ambulance", "ambulance", "ambulance"),
    _e("fire_truck", "fire truck", "fire_engine", en_aliases=("fire engine",)),
    _e("airplane", "airplane", "airplane", en_aliases=("plane",)),
    _e("helicopter", "helicopter", "helicopter"),
    _e("sailboat", "sailboat", "boat"),
    _e("ship", "ship", "ship"),
    _e("canoe", "canoe", "canoe"),
    _e("tent", "tent", "tent"),
    _e("fountain", "fountain", "fountain"),
    _e("volcano", "volcano", "volcano"),
    # sky
    _e("moon", "moon", "crescent_moon"),
    _e("sun", "sun", "sunny"),
    _e("star", "star", "star"),
    _e("rainbow", "rainbow", "rainbow"),
    _e("snowman", "snowman", "snowman"),
]

# Fashion-MNIST labels 0..9.
FASHION = [
    _f("tshirt", "T-shirt", 0),
    _f("trousers", "trousers", 1, number="plural", en_aliases=("pants",)),
    _f("pullover", "pullover", 2, en_aliases=("sweater",)),
    _f("dress", "dress", 3),
    _f("coat", "coat", 4),
    _f("sandal", "sandal", 5),
    _f("shirt", "shirt", 6),
    _f("sneaker", "sneaker", 7),
    _f("bag", "bag", 8),
    _f("ankle_boot", "ankle boot", 9, en_aliases=("boot",)),
]

FASHION_MNIST_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Classes of the --tiny dataset: every group, a skin-toned emoji, a plural and a Korean name.
TINY_KEYS = ("tiger", "apple", "man", "dog", "trousers", "sneaker")

# Words that are NOT classes, for calibrating the "not in memory" threshold. Chosen far from every
# class (no animals, food, objects that could be pictured; no "tree", "water", "street"...).
NEGATIVE_EN = (
    "window", "yesterday", "purple", "table", "kitchen", "garden", "morning", "tomorrow",
    "seven", "twelve", "happy", "quickly", "music", "paper", "money", "weather",
    "number", "family", "school", "hello", "please", "sorry", "open", "jump",
    "sleep", "laugh", "sing", "write", "yellow", "blue", "green", "holiday",
    "question", "answer", "minute", "nothing", "maybe", "idea", "summer", "shadow",
)  # fmt: skip
NEGATIVE_KO = (
    "창문", "어제", "보라색", "탁자", "부엌", "정원", "아침", "내일", "일곱", "행복",
    "음악", "종이", "날씨", "숫자", "가족", "학교", "안녕하세요", "질문", "여름", "그림자",
)  # fmt: skip

# Other words that are NOT classes, for training only (``train --unknown-weight``): the model
# learns to spread its class posterior evenly over them, so a question about something it has never
# seen scores low. None of them is a class name, a word of one, or a calibration word above, so
# the threshold is still calibrated on words the model never trained on.
UNKNOWN_EN = (
    "today", "tonight", "evening", "afternoon", "monday", "friday", "january", "october",
    "winter", "autumn", "pink", "brown", "white", "black", "grey", "silver",
    "three", "four", "five", "eight", "nine", "twenty", "hundred", "thousand",
    "always", "never", "often", "slowly", "loudly", "angry", "tired", "hungry",
    "lonely", "careful", "beautiful", "strange", "simple", "difficult", "important", "different",
    "remember", "forget", "listen", "speak", "think", "believe", "understand", "travel",
    "dance", "climb", "follow", "return", "begin", "finish", "wait", "hurry",
    "story", "history", "science", "language", "country", "city", "village", "office",
    "library", "hospital", "station", "market", "museum", "factory", "church", "hallway",
    "ceiling", "floor", "wall", "corner", "curtain", "mirror", "pillow", "blanket",
    "carpet", "shelf", "drawer", "cabinet", "printer", "cable", "button", "pocket",
    "wallet", "ticket", "message", "picture", "painting", "statue", "flag", "garage",
    "river", "forest", "desert", "island", "valley", "storm", "smoke", "noise",
    "silence", "energy", "freedom", "friend", "neighbour", "teacher", "doctor", "farmer",
    "police", "soldier", "queen", "pilot", "nurse", "student", "uncle", "daughter",
    # More everyday words, and words that sound like part of a class name without naming it
    # (timer/tiger, violet/violin, chip/ship, cheap/sheep, elegant/elephant), so the classes'
    # edges are learnt too. Each was checked against every class name's espeak-ng phonemes
    # (en-us, en, en-gb-scotland): no homophone of a class name is here.
    "sunday", "tuesday", "wednesday", "thursday", "saturday", "weekend", "february", "march",
    "april", "august", "september", "november", "december", "midnight", "noon", "season", "spring",
    "decade", "century", "moment", "six", "eleven", "thirteen", "fifteen", "forty", "fifty",
    "sixty", "million", "dozen", "half", "double", "red", "gold", "violet", "beige", "crimson",
    "scarlet", "turquoise", "quiet", "gentle", "brave", "clever", "honest", "polite", "lucky",
    "famous", "ancient", "modern", "heavy", "empty", "narrow", "shallow", "borrow", "explain",
    "imagine", "decide", "arrive", "escape", "invite", "improve", "prepare", "protect", "deliver",
    "discover", "measure", "whisper", "wonder", "breathe", "shout", "teach", "learn", "build",
    "carry", "push", "throw", "catch", "reason", "problem", "promise", "secret", "chance",
    "danger", "future", "habit", "journey", "lesson", "meaning", "method", "opinion", "pattern",
    "result", "example", "exercise", "knowledge", "advice", "comfort", "courage", "patience",
    "justice", "airport", "harbour", "bakery", "pharmacy", "stadium", "theatre", "prison",
    "palace", "temple", "tunnel", "avenue", "corridor", "balcony", "basement", "attic", "cellar",
    "courtyard", "canyon", "glacier", "prairie", "swamp", "jungle", "elbow", "shoulder", "finger",
    "thumb", "forehead", "eyebrow", "stomach", "tongue", "towel", "sponge", "napkin", "ribbon",
    "needle", "thread", "zipper", "necklace", "bracelet", "perfume", "calendar", "stapler",
    "blender", "vacuum", "oven", "stove", "sink", "faucet", "pyramid", "arrow", "target", "lawyer",
    "baker", "driver", "singer", "writer", "painter", "dentist", "captain", "prince", "princess",
    "cousin", "nephew", "grandmother", "husband", "stranger", "visitor", "customer", "partner",
    "thunder", "lightning", "fog", "breeze", "frost", "elegant", "element", "elevator", "relevant",
    "timer", "title", "tidy", "legal", "metal", "hassle", "stencil", "council", "throat", "vote",
    "chip", "trip", "whip", "cheap", "iron", "mouth", "south", "knee", "fun", "gun", "fuss", "fan",
    "nose", "toes", "meal", "nail", "mail", "tail", "shake", "jam", "brain", "golf", "warm",
    "load", "code", "town", "clown", "night", "horn", "rent", "cent", "tag", "chat", "press",
    "chess", "dirt", "tax", "wax", "lift", "shift", "demon", "beach", "speech", "bandana",
    "savanna", "chapel", "soul", "goal", "hole", "pearl", "curl", "toy", "joy", "fridge", "ridge",
    "sock", "dock", "crowd", "loud", "model", "cupboard", "decision", "vision", "xylophone",
    "stethoscope", "antelope", "campus", "practice", "rookie", "tornado", "visitors", "classes",
    "studio", "patio", "rooftop", "luck", "year", "ear", "log", "jog", "lawn", "wig", "course",
    "force", "box", "socks", "donkey", "wizard", "blizzard", "park", "dark", "cider", "rider",
    "channel", "handle", "letter", "matter", "locket", "lagoon", "cartoon", "room", "life", "wife",
    "june", "shampoo", "tattoo",
)  # fmt: skip
UNKNOWN_KO = (
    "오늘", "저녁", "겨울", "가을", "빨간색", "하얀색", "검은색", "하나", "다섯", "계단",
    "친구", "선생님", "의사", "도시", "마을", "병원", "도서관", "시장", "거울", "베개",
    "담요", "벽", "바닥", "이야기", "언어", "바람", "소리", "편지", "사진", "공장",
)  # fmt: skip


@dataclass
class ClassTable:
    classes: list[ClassSpec] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def __getitem__(self, i: int) -> ClassSpec:
        return self.classes[i]

    def index(self, key: str) -> int:
        for i, c in enumerate(self.classes):
            if c.key == key:
                return i
        raise KeyError(key)


def all_classes() -> list[ClassSpec]:
    """Every class, in id order: cifar, then emoji, then fashion."""
    return [*CIFAR, *EMOJI, *FASHION]


def select_classes(tiny: bool = False, keys: list[str] | None = None) -> list[ClassSpec]:
    """The classes of a build: all, the tiny set, or the given keys (in this table's order)."""
    classes = all_classes()
    if keys is None and tiny:
        keys = list(TINY_KEYS)
    if keys is None:
        return classes
    known = {c.key for c in classes}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown class keys: {', '.join(unknown)}")
    wanted = set(keys)
    return [c for c in classes if c.key in wanted]


def names_en(c: ClassSpec) -> list[str]:
    return [c.en, *c.en_aliases]


def names_ko(c: ClassSpec) -> list[str]:
    return [c.ko, *c.ko_aliases] if c.ko else []


def check_classes(classes: list[ClassSpec]) -> None:
    """Raises on duplicate keys or names, a bad group, or a negative word that names a class."""
    keys = [c.key for c in classes]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"duplicate class keys: {dup}")
    seen: dict[str, str] = {}
    for c in classes:
        if c.group not in GROUPS:
            raise ValueError(f"{c.key}: unknown group {c.group!r}")
        if c.group == "fashion" and c.fashion_label is None:
            raise ValueError(f"{c.key}: fashion class without a label")
        if c.group != "fashion" and not c.emoji:
            raise ValueError(f"{c.key}: no emoji")
        if c.number not in ("one", "plural", "mass"):
            raise ValueError(f"{c.key}: bad number {c.number!r}")
        for name in names_en(c) + names_ko(c):
            k = name.lower()
            if k in seen and seen[k] != c.key:
                raise ValueError(f"name {name!r} is used by {seen[k]} and {c.key}")
            seen[k] = c.key
    negatives = {w.lower() for w in NEGATIVE_EN + NEGATIVE_KO}
    clash = sorted(negatives & set(seen))
    if clash:
        raise ValueError(f"negative words name a class: {clash}")
    unknown = {w.lower() for w in UNKNOWN_EN + UNKNOWN_KO}
    clash = sorted(unknown & (set(seen) | negatives))
    if clash:
        raise ValueError(f"unknown training words name a class or a calibration word: {clash}")


def classes_csv(classes: list[ClassSpec]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "key", "en", "ko", "group", "cifar", "emoji", "fashion_label", "aliases"])
    for i, c in enumerate(classes):
        w.writerow(
            [
                i,
                c.key,
                c.en,
                c.ko or "",
                c.group,
                " ".join(c.cifar),
                " ".join(c.emoji),
                "" if c.fashion_label is None else c.fashion_label,
                " | ".join([*c.en_aliases, *c.ko_aliases]),
            ]
        )
    return buf.getvalue()


def write_classes_csv(classes: list[ClassSpec], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(classes_csv(classes), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# Phrases: what people say or type to ask for a class.

EN_CARRIERS_ONE = (
    "{n}",
    "the {n}",
    "find the {n}",
    "where is the {n}",
    "where's the {n}",
    "show me the {n}",
    "look for the {n}",
    "can you find the {n}",
    "do you see {a} {n}",
    "where did you see the {n}",
)
EN_CARRIERS_PLURAL = (
    "{n}",
    "the {n}",
    "find the {n}",
    "where are the {n}",
    "show me the {n}",
    "look for the {n}",
    "can you find the {n}",
    "do you see any {n}",
    "where did you see the {n}",
)
EN_CARRIERS_MASS = (
    "{n}",
    "the {n}",
    "find the {n}",
    "where is the {n}",
    "show me the {n}",
    "look for the {n}",
    "can you find the {n}",
    "do you see any {n}",
    "where did you see the {n}",
)
# Korean: {n} is the name, {i} the subject particle (이/가), {l} the object particle (을/를),
# {u} the topic particle (은/는), chosen by the name's last syllable.
KO_CARRIERS = (
    "{n}",
    "{n} 어디 있어",
    "{n} 어디 있어?",
    "{n}{u} 어디에 있어?",
    "{n}{i} 어디 있어요?",
    "{n} 찾아 줘",
    "{n}{l} 찾아 줘",
    "{n} 보여 줘",
    "{n}{l} 봤어?",
    "{n} 어디에 있나요",
)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def has_final_consonant(word: str) -> bool:
    """True if the last Hangul syllable of ``word`` ends in a consonant (batchim)."""
    for ch in reversed(word):
        code = ord(ch)
        if 0xAC00 <= code <= 0xD7A3:
            return (code - 0xAC00) % 28 != 0
    return False


def en_phrase(template: str, name: str, number: str = "one") -> str:
    return template.format(n=name, a=_article(name) if number == "one" else "")


def ko_phrase(template: str, name: str) -> str:
    fc = has_final_consonant(name)
    return template.format(
        n=name, i="이" if fc else "가", l="을" if fc else "를", u="은" if fc else "는"
    )


def en_carriers(number: str) -> tuple[str, ...]:
    return {"one": EN_CARRIERS_ONE, "plural": EN_CARRIERS_PLURAL, "mass": EN_CARRIERS_MASS}[number]


def negative_phrases() -> list[tuple[str, str]]:
    """(language, phrase) for every negative word: the bare word and "where is the <word>"."""
    out: list[tuple[str, str]] = []
    for w in NEGATIVE_EN:
        out.append(("en", w))
        out.append(("en", f"where is the {w}"))
    for w in NEGATIVE_KO:
        out.append(("ko", w))
        out.append(("ko", f"{w} 어디 있어"))
    return out
