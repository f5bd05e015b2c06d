"""Caption grammars of Swahili, Māori and Cusco Quechua (sw, mi, quz)."""

from demo.grammar_common import capitalised
from demo.grammar_common import forms
from demo.grammar_common import Grammar
from demo.scenes import Scene
from demo.scenes import SceneShape

# Swahili ----------------------------------------------------------------------

# Noun classes: 3 (m-/mi-) and 9 (n-/n-). Adjective roots take the class
# prefix (mdogo / ndogo); colours without a root of their own follow the
# connective of the class (wa / ya) and a noun ("wa kijani", of green).
_SW_NOUNS = {
    "circle": ("mduara", "3"), "square": ("mraba", "3"),
    "triangle": ("pembetatu", "9"), "star": ("nyota", "9"),
    "heart": ("moyo", "3"), "moon": ("mwezi", "3"),
}
# Forms for class 3, class 9, and after "rangi" (colour, class 9) in the
# background phrase "yenye rangi ..." (having the colour ...).
_SW_COLOURS = forms(
    "3|9|rangi",
    red="mwekundu|nyekundu|nyekundu",
    orange="wa rangi ya chungwa|ya rangi ya chungwa|ya chungwa",
    yellow="wa njano|ya njano|ya njano",
    green="wa kijani|ya kijani|ya kijani",
    blue="wa buluu|ya buluu|ya buluu",
    purple="wa zambarau|ya zambarau|ya zambarau",
    pink="wa waridi|ya waridi|ya waridi",
    brown="wa kahawia|ya kahawia|ya kahawia",
    black="mweusi|nyeusi|nyeusi",
    white="mweupe|nyeupe|nyeupe")
_SW_SIZES = forms("3|9", small="mdogo|ndogo", large="mkubwa|kubwa")
_SW_POSITIONS = {
    "left": "upande wa kushoto", "right": "upande wa kulia", "top": "juu",
    "bottom": "chini", "centre": "katikati",
}


def swahili(scene: Scene) -> tuple[str, ...]:
  """Swahili captions: adjectives agree with the noun's class."""
  def phrase(s: SceneShape) -> str:
    noun, noun_class = _SW_NOUNS[s.shape]
    return (f"{noun} {_SW_SIZES[s.size][noun_class]} "
            f"{_SW_COLOURS[s.colour][noun_class]} {_SW_POSITIONS[s.position]}")
  things = " na ".join(phrase(s) for s in scene.shapes)
  bg = (f"kwenye mandharinyuma yenye rangi "
        f"{_SW_COLOURS[scene.background.colour]['rangi']}")
  return (
      f"{capitalised(things)} {bg}.",
      f"Kuna {things} {bg}.",
      f"Picha ya {things} {bg}.",
  )


# Māori ------------------------------------------------------------------------

_MI_NOUNS = {
    "circle": "porowhita", "square": "tapawhā", "triangle": "tapatoru",
    "star": "whetū", "heart": "manawa", "moon": "marama",
}
_MI_COLOURS = {
    "red": "whero", "orange": "karaka", "yellow": "kōwhai",
    "green": "kākāriki", "blue": "kikorangi", "purple": "waiporoporo",
    "pink": "māwhero", "brown": "parauri", "black": "pango", "white": "mā",
}
_MI_SIZES = {"small": "iti", "large": "nui"}
_MI_POSITIONS = {
    "left": "ki te taha mauī", "right": "ki te taha matau",
    "top": "ki runga", "bottom": "ki raro", "centre": "ki waenganui",
}


def maori(scene: Scene) -> tuple[str, ...]:
  """Māori captions: modifiers follow the noun."""
  things = " me ".join(
      f"tētahi {_MI_NOUNS[s.shape]} {_MI_COLOURS[s.colour]} "
      f"{_MI_SIZES[s.size]} {_MI_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = f"i runga i te papamuri {_MI_COLOURS[scene.background.colour]}"
  return (
      f"He whakaahua o {things} {bg}.",
      f"Kei runga i te papamuri {_MI_COLOURS[scene.background.colour]} "
      f"{things}.",
      f"E whakaatu ana te whakaahua i {things} {bg}.",
  )


# Cusco Quechua ----------------------------------------------------------------

_QUZ_NOUNS = {
    "circle": "muyu", "square": "tawa k'uchu", "triangle": "kimsa k'uchu",
    "star": "ch'aska", "heart": "sunqu", "moon": "killa",
}
_QUZ_COLOURS = {
    "red": "puka", "orange": "q'illu puka", "yellow": "q'illu",
    "green": "q'umir", "blue": "anqas", "purple": "kulli", "pink": "panti",
    "brown": "ch'umpi", "black": "yana", "white": "yuraq",
}
_QUZ_SIZES = {"small": "huch'uy", "large": "hatun"}
_QUZ_POSITIONS = {
    "left": "lloq'e ladunpi", "right": "paña ladunpi",
    "top": "hanaq ladunpi", "bottom": "ura ladunpi", "centre": "chawpinpi",
}


def quechua(scene: Scene) -> tuple[str, ...]:
  """Cusco Quechua captions: modifiers precede the noun."""
  things = ", hinallataq ".join(
      f"huk {_QUZ_SIZES[s.size]} {_QUZ_COLOURS[s.colour]} "
      f"{_QUZ_NOUNS[s.shape]} {_QUZ_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = f"{_QUZ_COLOURS[scene.background.colour]} pampa patapi"
  return (
      f"{capitalised(bg)} {things} kan.",
      f"Kay siq'ipi {things} {bg} rikhurin.",
      f"{capitalised(things)}, {bg}.",
  )


GRAMMARS: dict[str, Grammar] = {"mi": maori, "quz": quechua, "sw": swahili}
