"""Caption grammars of the Asian XM3600 languages.

ar bn fa fil he hi id ja ko te th tr vi zh. Japanese, Chinese and Thai are
written without spaces; Korean particles follow the final consonant of the
word before them; Arabic and Hebrew attach "and" to the next word.
"""

from demo.grammar_common import by_count
from demo.grammar_common import capitalised
from demo.grammar_common import forms
from demo.grammar_common import Grammar
from demo.scenes import Scene
from demo.scenes import SceneShape

# Arabic -----------------------------------------------------------------------

_AR_NOUNS = {
    "circle": ("دائرة", "f"), "square": ("مربع", "m"),
    "triangle": ("مثلث", "m"), "star": ("نجمة", "f"),
    "heart": ("قلب", "m"), "moon": ("هلال", "m"),
}
_AR_ADJECTIVES = forms(
    "m|f", red="أحمر|حمراء", orange="برتقالي|برتقالية",
    yellow="أصفر|صفراء", green="أخضر|خضراء", blue="أزرق|زرقاء",
    purple="بنفسجي|بنفسجية", pink="وردي|وردية", brown="بني|بنية",
    black="أسود|سوداء", white="أبيض|بيضاء", small="صغير|صغيرة",
    large="كبير|كبيرة")
_AR_POSITIONS = {
    "left": "على اليسار", "right": "على اليمين", "top": "في الأعلى",
    "bottom": "في الأسفل", "centre": "في الوسط",
}
# A verb before its subject agrees with it in gender, in the singular.
_AR_APPEARS = {"m": "يظهر", "f": "تظهر"}


def arabic(scene: Scene) -> tuple[str, ...]:
  """Arabic captions: adjectives follow and agree with the noun."""
  def phrase(s: SceneShape) -> str:
    noun, gender = _AR_NOUNS[s.shape]
    return (f"{noun} {_AR_ADJECTIVES[s.colour][gender]} "
            f"{_AR_ADJECTIVES[s.size][gender]} {_AR_POSITIONS[s.position]}")
  things = " و".join(phrase(s) for s in scene.shapes)
  # "خلفية" (background) is feminine.
  bg = f"على خلفية {_AR_ADJECTIVES[scene.background.colour]['f']}"
  appears = _AR_APPEARS[_AR_NOUNS[scene.shapes[0].shape][1]]
  return (
      f"{things} {bg}.",
      f"في الصورة {things} {bg}.",
      f"{appears} {bg} {things}.",
  )


# Hebrew -----------------------------------------------------------------------

# Every shape noun here is masculine, and so is "רקע" (background).
_HE_NOUNS = {
    "circle": "עיגול", "square": "ריבוע", "triangle": "משולש",
    "star": "כוכב", "heart": "לב", "moon": "ירח",
}
_HE_ADJECTIVES = {
    "red": "אדום", "orange": "כתום", "yellow": "צהוב", "green": "ירוק",
    "blue": "כחול", "purple": "סגול", "pink": "ורוד", "brown": "חום",
    "black": "שחור", "white": "לבן", "small": "קטן", "large": "גדול",
}
_HE_POSITIONS = {
    "left": "משמאל", "right": "מימין", "top": "למעלה", "bottom": "למטה",
    "centre": "במרכז",
}


def hebrew(scene: Scene) -> tuple[str, ...]:
  """Hebrew captions: adjectives follow the noun; the verb agrees in number."""
  things = " ו".join(
      f"{_HE_NOUNS[s.shape]} {_HE_ADJECTIVES[s.colour]} "
      f"{_HE_ADJECTIVES[s.size]} {_HE_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = f"על רקע {_HE_ADJECTIVES[scene.background.colour]}"
  return (
      f"{things} {bg}.",
      f"בתמונה יש {things} {bg}.",
      f"{bg} {by_count(scene, 'מופיע', 'מופיעים')} {things}.",
  )


# Persian ----------------------------------------------------------------------

_FA_NOUNS = {
    "circle": "دایره", "square": "مربع", "triangle": "مثلث",
    "star": "ستاره", "heart": "قلب", "moon": "هلال ماه",
}
_FA_COLOURS = {
    "red": "قرمز", "orange": "نارنجی", "yellow": "زرد", "green": "سبز",
    "blue": "آبی", "purple": "بنفش", "pink": "صورتی",
    "brown": "قهوه\u200cای", "black": "سیاه", "white": "سفید",
}
_FA_SIZES = {"small": "کوچک", "large": "بزرگ"}
_FA_POSITIONS = {
    "left": "در سمت چپ", "right": "در سمت راست", "top": "در بالا",
    "bottom": "در پایین", "centre": "در وسط",
}


def persian(scene: Scene) -> tuple[str, ...]:
  """Persian captions (the ezafe left unwritten, as is usual)."""
  things = " و ".join(
      f"یک {_FA_NOUNS[s.shape]} {_FA_COLOURS[s.colour]} {_FA_SIZES[s.size]} "
      f"{_FA_POSITIONS[s.position]}" for s in scene.shapes)
  bg = f"پس\u200cزمینه {_FA_COLOURS[scene.background.colour]}"
  return (
      f"{things} روی {bg}.",
      f"در تصویر {things} روی {bg} دیده می\u200cشود.",
      f"تصویری از {things} با {bg}.",
  )


# Turkish ----------------------------------------------------------------------

_TR_NOUNS = {
    "circle": "daire", "square": "kare", "triangle": "üçgen",
    "star": "yıldız", "heart": "kalp", "moon": "hilal",
}
_TR_COLOURS = {
    "red": "kırmızı", "orange": "turuncu", "yellow": "sarı", "green": "yeşil",
    "blue": "mavi", "purple": "mor", "pink": "pembe", "brown": "kahverengi",
    "black": "siyah", "white": "beyaz",
}
_TR_SIZES = {"small": "küçük", "large": "büyük"}
_TR_POSITIONS = {
    "left": "solda", "right": "sağda", "top": "üstte", "bottom": "altta",
    "centre": "ortada",
}


def turkish(scene: Scene) -> tuple[str, ...]:
  """Turkish captions: adjectives come before "bir" (a)."""
  things = " ve ".join(
      f"{_TR_POSITIONS[s.position]} {_TR_SIZES[s.size]} "
      f"{_TR_COLOURS[s.colour]} bir {_TR_NOUNS[s.shape]}"
      for s in scene.shapes)
  bg = _TR_COLOURS[scene.background.colour]
  return (
      f"{capitalised(bg)} bir arka plan üzerinde {things}.",
      f"{capitalised(bg)} arka planda {things} var.",
      f"{capitalised(things)} bulunan {bg} bir arka plan.",
  )


# Hindi, Bengali, Telugu -------------------------------------------------------

# Every shape noun here is masculine; "पृष्ठभूमि" (background) is feminine.
_HI_NOUNS = {
    "circle": "गोला", "square": "वर्ग", "triangle": "त्रिभुज",
    "star": "तारा", "heart": "दिल", "moon": "चाँद",
}
_HI_ADJECTIVES = forms(
    "m|f", red="लाल", orange="नारंगी", yellow="पीला|पीली", green="हरा|हरी",
    blue="नीला|नीली", purple="बैंगनी", pink="गुलाबी", brown="भूरा|भूरी",
    black="काला|काली", white="सफ़ेद", small="छोटा|छोटी", large="बड़ा|बड़ी")
_HI_POSITIONS = {
    "left": "बाईं ओर", "right": "दाईं ओर", "top": "ऊपर", "bottom": "नीचे",
    "centre": "बीच में",
}


def hindi(scene: Scene) -> tuple[str, ...]:
  """Hindi captions: adjectives and verbs agree in gender and number."""
  things = " और ".join(
      f"{_HI_POSITIONS[s.position]} एक {_HI_ADJECTIVES[s.size]['m']} "
      f"{_HI_ADJECTIVES[s.colour]['m']} {_HI_NOUNS[s.shape]}"
      for s in scene.shapes)
  bg = f"{_HI_ADJECTIVES[scene.background.colour]['f']} पृष्ठभूमि पर"
  return (
      f"{bg} {things}।",
      f"चित्र में {bg} {things} {by_count(scene, 'है', 'हैं')}।",
      f"{bg} {things} "
      f"{by_count(scene, 'दिखाई देता है', 'दिखाई देते हैं')}।",
  )


_BN_NOUNS = {
    "circle": "বৃত্ত", "square": "বর্গ", "triangle": "ত্রিভুজ",
    "star": "তারা", "heart": "হৃদয়", "moon": "চাঁদ",
}
_BN_COLOURS = {
    "red": "লাল", "orange": "কমলা", "yellow": "হলুদ", "green": "সবুজ",
    "blue": "নীল", "purple": "বেগুনি", "pink": "গোলাপি", "brown": "বাদামি",
    "black": "কালো", "white": "সাদা",
}
_BN_SIZES = {"small": "ছোট", "large": "বড়"}
_BN_POSITIONS = {
    "left": "বাঁ দিকে", "right": "ডান দিকে", "top": "উপরে", "bottom": "নিচে",
    "centre": "মাঝখানে",
}


def bengali(scene: Scene) -> tuple[str, ...]:
  """Bengali captions, with the classifier "একটি" (one)."""
  things = " এবং ".join(
      f"{_BN_POSITIONS[s.position]} একটি {_BN_SIZES[s.size]} "
      f"{_BN_COLOURS[s.colour]} {_BN_NOUNS[s.shape]}" for s in scene.shapes)
  bg = _BN_COLOURS[scene.background.colour]
  return (
      f"{bg} পটভূমিতে {things}।",
      f"ছবিতে {bg} পটভূমিতে {things} আছে।",
      f"{bg} পটভূমির উপর {things} দেখা যাচ্ছে।",
  )


_TE_NOUNS = {
    "circle": "వృత్తం", "square": "చతురస్రం", "triangle": "త్రిభుజం",
    "star": "నక్షత్రం", "heart": "హృదయం", "moon": "చంద్రవంక",
}
_TE_COLOURS = {
    "red": "ఎరుపు", "orange": "నారింజ", "yellow": "పసుపు",
    "green": "ఆకుపచ్చ", "blue": "నీలం", "purple": "ఊదా", "pink": "గులాబీ",
    "brown": "గోధుమ", "black": "నలుపు", "white": "తెలుపు",
}
_TE_SIZES = {"small": "చిన్న", "large": "పెద్ద"}
_TE_POSITIONS = {
    "left": "ఎడమ వైపు", "right": "కుడి వైపు", "top": "పైన",
    "bottom": "కింద", "centre": "మధ్యలో",
}


def telugu(scene: Scene) -> tuple[str, ...]:
  """Telugu captions: colours as "<colour> రంగు" (of colour <colour>)."""
  things = " మరియు ".join(
      f"{_TE_POSITIONS[s.position]} ఒక {_TE_SIZES[s.size]} "
      f"{_TE_COLOURS[s.colour]} రంగు {_TE_NOUNS[s.shape]}"
      for s in scene.shapes)
  bg = f"{_TE_COLOURS[scene.background.colour]} రంగు నేపథ్యంపై"
  return (
      f"{bg} {things}.",
      f"చిత్రంలో {bg} {things} {by_count(scene, 'ఉంది', 'ఉన్నాయి')}.",
      f"{bg} {things} "
      f"{by_count(scene, 'కనిపిస్తోంది', 'కనిపిస్తున్నాయి')}.",
  )


# Japanese, Chinese, Korean ----------------------------------------------------

_JA_NOUNS = {
    "circle": "円", "square": "四角", "triangle": "三角", "star": "星",
    "heart": "ハート", "moon": "三日月",
}
# Attributive forms (before a noun) and noun forms ("背景は青です").
_JA_COLOURS = forms(
    "attr|noun", red="赤い|赤", orange="オレンジ色の|オレンジ色",
    yellow="黄色い|黄色", green="緑の|緑", blue="青い|青", purple="紫の|紫",
    pink="ピンクの|ピンク", brown="茶色の|茶色", black="黒い|黒",
    white="白い|白")
_JA_SIZES = {"small": "小さな", "large": "大きな"}
_JA_POSITIONS = {
    "left": "左", "right": "右", "top": "上", "bottom": "下",
    "centre": "中央",
}


def japanese(scene: Scene) -> tuple[str, ...]:
  """Japanese captions, with the counter "一つ"."""
  def thing(s: SceneShape) -> str:
    return (f"{_JA_SIZES[s.size]}{_JA_COLOURS[s.colour]['attr']}"
            f"{_JA_NOUNS[s.shape]}")
  bg = _JA_COLOURS[scene.background.colour]
  located = "、".join(f"{_JA_POSITIONS[s.position]}に{thing(s)}"
                     for s in scene.shapes)
  modified = "と".join(f"{_JA_POSITIONS[s.position]}の{thing(s)}"
                      for s in scene.shapes)
  counted = "、".join(f"{_JA_POSITIONS[s.position]}に{thing(s)}が一つ"
                     for s in scene.shapes)
  return (
      f"{bg['attr']}背景の上に、{located}があります。",
      f"{bg['attr']}背景に描かれた{modified}。",
      f"画像には{counted}描かれています。背景は{bg['noun']}です。",
  )


# Chinese measure words differ by noun: 个 (general), 颗 (stars, hearts),
# 弯 (a crescent moon).
_ZH_NOUNS = {
    "circle": ("圆形", "个"), "square": ("正方形", "个"),
    "triangle": ("三角形", "个"), "star": ("星星", "颗"),
    "heart": ("爱心", "颗"), "moon": ("月牙", "弯"),
}
_ZH_COLOURS = {
    "red": "红色", "orange": "橙色", "yellow": "黄色", "green": "绿色",
    "blue": "蓝色", "purple": "紫色", "pink": "粉色", "brown": "棕色",
    "black": "黑色", "white": "白色",
}
_ZH_SIZES = {"small": "小", "large": "大"}
_ZH_POSITIONS = {
    "left": "左边", "right": "右边", "top": "上方", "bottom": "下方",
    "centre": "中间",
}


def chinese(scene: Scene) -> tuple[str, ...]:
  """Chinese (simplified) captions with per-noun measure words."""
  def counted(s: SceneShape) -> str:
    noun, measure = _ZH_NOUNS[s.shape]
    return f"一{measure}{_ZH_COLOURS[s.colour]}的{_ZH_SIZES[s.size]}{noun}"
  bg = _ZH_COLOURS[scene.background.colour]
  there_are = "，".join(f"{_ZH_POSITIONS[s.position]}有{counted(s)}"
                       for s in scene.shapes)
  are = "，".join(f"{_ZH_POSITIONS[s.position]}是{counted(s)}"
                 for s in scene.shapes)
  drawn = "和".join(
      f"{_ZH_POSITIONS[s.position]}的{_ZH_COLOURS[s.colour]}"
      f"{_ZH_SIZES[s.size]}{_ZH_NOUNS[s.shape][0]}" for s in scene.shapes)
  return (
      f"{bg}背景上，{there_are}。",
      f"图中{are}，背景是{bg}的。",
      f"在{bg}的背景上画着{drawn}。",
  )


_KO_NOUNS = {
    "circle": "원", "square": "사각형", "triangle": "삼각형", "star": "별",
    "heart": "하트", "moon": "초승달",
}
_KO_COLOURS = {
    "red": "빨간", "orange": "주황색", "yellow": "노란", "green": "초록색",
    "blue": "파란", "purple": "보라색", "pink": "분홍색", "brown": "갈색",
    "black": "검은", "white": "흰",
}
_KO_SIZES = {"small": "작은", "large": "큰"}
_KO_POSITIONS = {
    "left": "왼쪽", "right": "오른쪽", "top": "위쪽", "bottom": "아래쪽",
    "centre": "가운데",
}
_HANGUL_FIRST, _HANGUL_LAST, _HANGUL_FINALS = 0xAC00, 0xD7A3, 28


def _ends_in_consonant(word: str) -> bool:
  """Whether the last Hangul syllable of `word` has a final consonant."""
  code = ord(word[-1])
  return (_HANGUL_FIRST <= code <= _HANGUL_LAST
          and (code - _HANGUL_FIRST) % _HANGUL_FINALS != 0)


def _ko_particle(word: str, after_consonant: str, after_vowel: str) -> str:
  return word + (after_consonant if _ends_in_consonant(word) else after_vowel)


def korean(scene: Scene) -> tuple[str, ...]:
  """Korean captions: 이/가 and 과/와 chosen by the preceding syllable."""
  def thing(s: SceneShape) -> str:
    return f"{_KO_SIZES[s.size]} {_KO_COLOURS[s.colour]} {_KO_NOUNS[s.shape]}"
  bg = _KO_COLOURS[scene.background.colour]
  clauses = " ".join(
      f"{_ko_particle(thing(s), '이', '가')} {_KO_POSITIONS[s.position]}에 "
      + ("있고" if i < len(scene.shapes) - 1 else "있습니다.")
      for i, s in enumerate(scene.shapes))
  # The counted phrases end in "하나" (one), a vowel: 와 and 가 follow.
  counted = "와 ".join(f"{_KO_POSITIONS[s.position]}에 {thing(s)} 하나"
                      for s in scene.shapes)
  located = [f"{_KO_POSITIONS[s.position]}의 {thing(s)}" for s in scene.shapes]
  joined = "".join(
      _ko_particle(p, "과 ", "와 ") if i < len(located) - 1 else p
      for i, p in enumerate(located))
  return (
      f"{bg} 배경 위에 {clauses}",
      f"{counted}가 그려진 {bg} 배경의 그림입니다.",
      f"이 그림에는 {bg} 배경에 {_ko_particle(joined, '이', '가')} 있습니다.",
  )


# Thai, Vietnamese, Indonesian, Filipino ---------------------------------------

# Thai classifiers: วง for a circle, รูป for polygons, ดวง for celestial
# bodies and hearts.
_TH_NOUNS = {
    "circle": ("วงกลม", "วง"), "square": ("สี่เหลี่ยมจัตุรัส", "รูป"),
    "triangle": ("สามเหลี่ยม", "รูป"), "star": ("ดาว", "ดวง"),
    "heart": ("หัวใจ", "ดวง"), "moon": ("พระจันทร์เสี้ยว", "ดวง"),
}
_TH_COLOURS = {
    "red": "สีแดง", "orange": "สีส้ม", "yellow": "สีเหลือง", "green": "สีเขียว",
    "blue": "สีน้ำเงิน", "purple": "สีม่วง", "pink": "สีชมพู",
    "brown": "สีน้ำตาล", "black": "สีดำ", "white": "สีขาว",
}
_TH_SIZES = {"small": "ขนาดเล็ก", "large": "ขนาดใหญ่"}
_TH_POSITIONS = {
    "left": "ทางซ้าย", "right": "ทางขวา", "top": "ด้านบน", "bottom": "ด้านล่าง",
    "centre": "ตรงกลาง",
}


def thai(scene: Scene) -> tuple[str, ...]:
  """Thai captions, written without spaces, with classifiers."""
  def thing(s: SceneShape) -> str:
    return (f"{_TH_NOUNS[s.shape][0]}{_TH_COLOURS[s.colour]}"
            f"{_TH_SIZES[s.size]}")
  bg = f"พื้นหลัง{_TH_COLOURS[scene.background.colour]}"
  located = "และ".join(f"{thing(s)}อยู่{_TH_POSITIONS[s.position]}"
                       for s in scene.shapes)
  placed = "และ".join(f"{thing(s)}{_TH_POSITIONS[s.position]}"
                      for s in scene.shapes)
  counted = "และ".join(
      f"{thing(s)}หนึ่ง{_TH_NOUNS[s.shape][1]}{_TH_POSITIONS[s.position]}"
      for s in scene.shapes)
  return (
      f"มี{located}บน{bg}",
      f"ภาพ{placed}บน{bg}",
      f"บน{bg}มี{counted}",
  )


_VI_NOUNS = {
    "circle": "hình tròn", "square": "hình vuông",
    "triangle": "hình tam giác", "star": "ngôi sao", "heart": "trái tim",
    "moon": "vầng trăng khuyết",
}
_VI_COLOURS = {
    "red": "đỏ", "orange": "cam", "yellow": "vàng", "green": "xanh lá cây",
    "blue": "xanh dương", "purple": "tím", "pink": "hồng", "brown": "nâu",
    "black": "đen", "white": "trắng",
}
_VI_SIZES = {"small": "nhỏ", "large": "lớn"}
_VI_POSITIONS = {
    "left": "ở bên trái", "right": "ở bên phải", "top": "ở phía trên",
    "bottom": "ở phía dưới", "centre": "ở chính giữa",
}


def vietnamese(scene: Scene) -> tuple[str, ...]:
  """Vietnamese captions."""
  things = " và ".join(
      f"một {_VI_NOUNS[s.shape]} {_VI_SIZES[s.size]} màu "
      f"{_VI_COLOURS[s.colour]} {_VI_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = f"nền màu {_VI_COLOURS[scene.background.colour]}"
  return (
      f"{capitalised(things)} trên {bg}.",
      f"Trên {bg} có {things}.",
      f"Một bức hình gồm {things} trên {bg}.",
  )


_ID_NOUNS = {
    "circle": "lingkaran", "square": "persegi", "triangle": "segitiga",
    "star": "bintang", "heart": "hati", "moon": "bulan sabit",
}
_ID_COLOURS = {
    "red": "merah", "orange": "oranye", "yellow": "kuning", "green": "hijau",
    "blue": "biru", "purple": "ungu", "pink": "merah muda",
    "brown": "cokelat", "black": "hitam", "white": "putih",
}
_ID_SIZES = {"small": "kecil", "large": "besar"}
_ID_POSITIONS = {
    "left": "di sebelah kiri", "right": "di sebelah kanan",
    "top": "di bagian atas", "bottom": "di bagian bawah",
    "centre": "di tengah",
}


def indonesian(scene: Scene) -> tuple[str, ...]:
  """Indonesian captions."""
  things = " dan ".join(
      f"sebuah {_ID_NOUNS[s.shape]} {_ID_SIZES[s.size]} berwarna "
      f"{_ID_COLOURS[s.colour]} {_ID_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = _ID_COLOURS[scene.background.colour]
  return (
      f"{capitalised(things)} dengan latar belakang {bg}.",
      f"Terdapat {things} di atas latar belakang berwarna {bg}.",
      f"Gambar {things} pada latar belakang {bg}.",
  )


_FIL_NOUNS = {
    "circle": "bilog", "square": "parisukat", "triangle": "tatsulok",
    "star": "bituin", "heart": "puso", "moon": "buwan",
}
_FIL_COLOURS = {
    "red": "pula", "orange": "kahel", "yellow": "dilaw", "green": "berde",
    "blue": "asul", "purple": "lila", "pink": "rosas",
    "brown": "kayumanggi", "black": "itim", "white": "puti",
}
_FIL_SIZES = {"small": "maliit", "large": "malaki"}
_FIL_POSITIONS = {
    "left": "sa kaliwa", "right": "sa kanan", "top": "sa itaas",
    "bottom": "sa ibaba", "centre": "sa gitna",
}


def _linked(word: str) -> str:
  """`word` with the Filipino linker: -ng after a vowel, else "na".

  (After a final n the linker is -g; no modifier here ends in n.)
  """
  return word + "ng" if word[-1] in "aeiou" else word + " na"


def filipino(scene: Scene) -> tuple[str, ...]:
  """Filipino captions: modifiers joined to what follows by the linker."""
  things = " at ".join(
      f"isang {_linked(_FIL_SIZES[s.size])} {_linked(_FIL_COLOURS[s.colour])} "
      f"{_FIL_NOUNS[s.shape]} {_FIL_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = f"{_linked(_FIL_COLOURS[scene.background.colour])} likuran"
  return (
      f"{capitalised(things)} sa {bg}.",
      f"May {things} sa {bg}.",
      f"Larawan ng {things} sa {bg}.",
  )


GRAMMARS: dict[str, Grammar] = {
    "ar": arabic, "bn": bengali, "fa": persian, "fil": filipino,
    "he": hebrew, "hi": hindi, "id": indonesian, "ja": japanese,
    "ko": korean, "te": telugu, "th": thai, "tr": turkish, "vi": vietnamese,
    "zh": chinese,
}
