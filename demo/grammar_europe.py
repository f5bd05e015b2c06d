"""Caption grammars of the European XM3600 languages.

cs da de el en es fi fr hr hu it nl no pl pt ro ru sv uk. Adjectives agree
with their noun's gender (and case, where the template puts the noun in one),
in the word order each language uses.
"""

from demo.grammar_common import agree
from demo.grammar_common import by_count
from demo.grammar_common import capitalised
from demo.grammar_common import forms
from demo.grammar_common import Grammar
from demo.scenes import Scene
from demo.scenes import SceneShape

# English ----------------------------------------------------------------------

_EN_POSITIONS = {
    "left": "on the left", "right": "on the right", "top": "at the top",
    "bottom": "at the bottom", "centre": "in the centre",
}


def _en_article(word: str) -> str:
  """"a" or "an" before `word` (every word here is spelled as it sounds)."""
  return "an" if word[0] in "aeiou" else "a"


def english(scene: Scene) -> tuple[str, ...]:
  """English captions."""
  things = " and ".join(
      f"a {s.size} {s.colour} {s.shape} {_EN_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = scene.background.colour
  on_bg = f"on {_en_article(bg)} {bg} background"
  return (
      f"{capitalised(things)} {on_bg}.",
      # "There is" agrees with the nearest noun, as usual in speech.
      f"There is {things} {on_bg}.",
      f"A picture of {things} {on_bg}.",
      f"{capitalised(_en_article(bg))} {bg} background with {things}.",
  )


# German -----------------------------------------------------------------------

_DE_NOUNS = {
    "circle": ("Kreis", "m"), "square": ("Quadrat", "n"),
    "triangle": ("Dreieck", "n"), "star": ("Stern", "m"),
    "heart": ("Herz", "n"), "moon": ("Mond", "m"),
}
# Adjective stems; endings follow the indefinite article (mixed declension).
_DE_COLOURS = {
    "red": "rot", "orange": "orangefarben", "yellow": "gelb", "green": "grün",
    "blue": "blau", "purple": "violett", "pink": "rosafarben",
    "brown": "braun", "black": "schwarz", "white": "weiß",
}
_DE_SIZES = {"small": "klein", "large": "groß"}
_DE_ARTICLE_AND_ENDING = {
    ("nom", "m"): ("ein", "er"), ("nom", "n"): ("ein", "es"),
    ("acc", "m"): ("einen", "en"), ("acc", "n"): ("ein", "es"),
}
_DE_POSITIONS = {
    "left": "links", "right": "rechts", "top": "oben", "bottom": "unten",
    "centre": "in der Mitte",
}


def _german_shapes(scene: Scene, case: str) -> str:
  def phrase(s: SceneShape) -> str:
    noun, gender = _DE_NOUNS[s.shape]
    article, ending = _DE_ARTICLE_AND_ENDING[case, gender]
    return (f"{article} {_DE_SIZES[s.size]}{ending} "
            f"{_DE_COLOURS[s.colour]}{ending} {noun} "
            f"{_DE_POSITIONS[s.position]}")
  return " und ".join(phrase(s) for s in scene.shapes)


def german(scene: Scene) -> tuple[str, ...]:
  """German captions: nominative and accusative, strong dative background."""
  nominative = _german_shapes(scene, "nom")
  # "auf blauem Hintergrund": strong dative masculine ending.
  bg = f"{_DE_COLOURS[scene.background.colour]}em Hintergrund"
  return (
      f"{capitalised(nominative)} auf {bg}.",
      f"Auf {bg} {by_count(scene, 'ist', 'sind')} {nominative} zu sehen.",
      f"Das Bild zeigt {_german_shapes(scene, 'acc')} auf {bg}.",
  )


# Dutch ------------------------------------------------------------------------

_NL_NOUNS = {
    "circle": ("cirkel", "de"), "square": ("vierkant", "het"),
    "triangle": ("driehoek", "de"), "star": ("ster", "de"),
    "heart": ("hart", "het"), "moon": ("maan", "de"),
}
# After "een", adjectives take -e with de-words and stay bare with het-words.
_NL_COLOURS = forms(
    "het|de", red="rood|rode", orange="oranje", yellow="geel|gele",
    green="groen|groene", blue="blauw|blauwe", purple="paars|paarse",
    pink="roze", brown="bruin|bruine", black="zwart|zwarte",
    white="wit|witte")
_NL_SIZES = forms("het|de", small="klein|kleine", large="groot|grote")
_NL_POSITIONS = {
    "left": "links", "right": "rechts", "top": "bovenaan",
    "bottom": "onderaan", "centre": "in het midden",
}


def dutch(scene: Scene) -> tuple[str, ...]:
  """Dutch captions."""
  def phrase(s: SceneShape) -> str:
    noun, gender = _NL_NOUNS[s.shape]
    return (f"een {_NL_SIZES[s.size][gender]} {_NL_COLOURS[s.colour][gender]} "
            f"{noun} {_NL_POSITIONS[s.position]}")
  things = " en ".join(phrase(s) for s in scene.shapes)
  bg = f"een {_NL_COLOURS[scene.background.colour]['de']} achtergrond"
  return (
      f"{capitalised(things)} op {bg}.",
      f"Op {bg} {by_count(scene, 'is', 'zijn')} {things} te zien.",
      f"Een afbeelding van {things} op {bg}.",
  )


# Danish, Norwegian (Bokmål), Swedish ------------------------------------------
# The three share one shape: an article and adjectives by gender (common or
# neuter), the noun, then the position; each has its own words and templates.

_DA_NOUNS = {
    "circle": ("cirkel", "c"), "square": ("firkant", "c"),
    "triangle": ("trekant", "c"), "star": ("stjerne", "c"),
    "heart": ("hjerte", "n"), "moon": ("måne", "c"),
}
_DA_COLOURS = forms(
    "c|n", red="rød|rødt", orange="orange", yellow="gul|gult",
    green="grøn|grønt", blue="blå|blåt", purple="lilla",
    pink="lyserød|lyserødt", brown="brun|brunt", black="sort",
    white="hvid|hvidt")
_DA_SIZES = forms("c|n", small="lille", large="stor|stort")
_DA_ARTICLES = {"c": "en", "n": "et"}
_DA_POSITIONS = {
    "left": "til venstre", "right": "til højre", "top": "øverst",
    "bottom": "nederst", "centre": "i midten",
}

_NO_NOUNS = {
    "circle": ("sirkel", "m"), "square": ("firkant", "m"),
    "triangle": ("trekant", "m"), "star": ("stjerne", "m"),
    "heart": ("hjerte", "n"), "moon": ("måne", "m"),
}
_NO_COLOURS = forms(
    "m|n", red="rød|rødt", orange="oransje", yellow="gul|gult",
    green="grønn|grønt", blue="blå|blått", purple="lilla", pink="rosa",
    brown="brun|brunt", black="svart", white="hvit|hvitt")
_NO_SIZES = forms("m|n", small="liten|lite", large="stor|stort")
_NO_ARTICLES = {"m": "en", "n": "et"}
_NO_POSITIONS = {
    "left": "til venstre", "right": "til høyre", "top": "øverst",
    "bottom": "nederst", "centre": "i midten",
}

_SV_NOUNS = {
    "circle": ("cirkel", "c"), "square": ("kvadrat", "c"),
    "triangle": ("triangel", "c"), "star": ("stjärna", "c"),
    "heart": ("hjärta", "n"), "moon": ("måne", "c"),
}
_SV_COLOURS = forms(
    "c|n", red="röd|rött", orange="orange", yellow="gul|gult",
    green="grön|grönt", blue="blå|blått", purple="lila", pink="rosa",
    brown="brun|brunt", black="svart", white="vit|vitt")
_SV_SIZES = forms("c|n", small="liten|litet", large="stor|stort")
_SV_ARTICLES = {"c": "en", "n": "ett"}
_SV_POSITIONS = {
    "left": "till vänster", "right": "till höger", "top": "längst upp",
    "bottom": "längst ner", "centre": "i mitten",
}


def _scandinavian_shapes(scene: Scene, nouns, articles, sizes, colours,
                         positions, conjunction: str) -> str:
  def phrase(s: SceneShape) -> str:
    noun, gender = nouns[s.shape]
    return (f"{articles[gender]} {sizes[s.size][gender]} "
            f"{colours[s.colour][gender]} {noun} {positions[s.position]}")
  return f" {conjunction} ".join(phrase(s) for s in scene.shapes)


def danish(scene: Scene) -> tuple[str, ...]:
  """Danish captions."""
  things = _scandinavian_shapes(scene, _DA_NOUNS, _DA_ARTICLES, _DA_SIZES,
                                _DA_COLOURS, _DA_POSITIONS, "og")
  bg = f"en {_DA_COLOURS[scene.background.colour]['c']} baggrund"
  return (
      f"{capitalised(things)} på {bg}.",
      f"På {bg} ses {things}.",
      f"Et billede af {things} på {bg}.",
  )


def norwegian(scene: Scene) -> tuple[str, ...]:
  """Norwegian (Bokmål) captions."""
  things = _scandinavian_shapes(scene, _NO_NOUNS, _NO_ARTICLES, _NO_SIZES,
                                _NO_COLOURS, _NO_POSITIONS, "og")
  bg = f"en {_NO_COLOURS[scene.background.colour]['m']} bakgrunn"
  return (
      f"{capitalised(things)} på {bg}.",
      f"På {bg} ser man {things}.",
      f"Et bilde av {things} på {bg}.",
  )


def swedish(scene: Scene) -> tuple[str, ...]:
  """Swedish captions."""
  things = _scandinavian_shapes(scene, _SV_NOUNS, _SV_ARTICLES, _SV_SIZES,
                                _SV_COLOURS, _SV_POSITIONS, "och")
  bg = f"en {_SV_COLOURS[scene.background.colour]['c']} bakgrund"
  return (
      f"{capitalised(things)} mot {bg}.",
      f"På {bg} syns {things}.",
      f"En bild som visar {things} mot {bg}.",
  )


# French, Italian, Portuguese: article, size, noun, colour ---------------------

_FR_NOUNS = {
    "circle": ("cercle", "m"), "square": ("carré", "m"),
    "triangle": ("triangle", "m"), "star": ("étoile", "f"),
    "heart": ("cœur", "m"), "moon": ("lune", "f"),
}
_FR_COLOURS = forms(
    "m|f", red="rouge", orange="orange", yellow="jaune", green="vert|verte",
    blue="bleu|bleue", purple="violet|violette", pink="rose",
    brown="marron", black="noir|noire", white="blanc|blanche")
_FR_SIZES = forms("m|f", small="petit|petite", large="grand|grande")
_FR_ARTICLES = {"m": "un", "f": "une"}
_FR_POSITIONS = {
    "left": "à gauche", "right": "à droite", "top": "en haut",
    "bottom": "en bas", "centre": "au centre",
}

_IT_NOUNS = {
    "circle": ("cerchio", "m"), "square": ("quadrato", "m"),
    "triangle": ("triangolo", "m"), "star": ("stella", "f"),
    "heart": ("cuore", "m"), "moon": ("luna", "f"),
}
_IT_COLOURS = forms(
    "m|f", red="rosso|rossa", orange="arancione", yellow="giallo|gialla",
    green="verde", blue="blu", purple="viola", pink="rosa",
    brown="marrone", black="nero|nera", white="bianco|bianca")
_IT_SIZES = forms("m|f", small="piccolo|piccola", large="grande")
_IT_ARTICLES = {"m": "un", "f": "una"}
_IT_POSITIONS = {
    "left": "a sinistra", "right": "a destra", "top": "in alto",
    "bottom": "in basso", "centre": "al centro",
}

_PT_NOUNS = {
    "circle": ("círculo", "m"), "square": ("quadrado", "m"),
    "triangle": ("triângulo", "m"), "star": ("estrela", "f"),
    "heart": ("coração", "m"), "moon": ("lua", "f"),
}
_PT_COLOURS = forms(
    "m|f", red="vermelho|vermelha", orange="laranja",
    yellow="amarelo|amarela", green="verde", blue="azul",
    purple="roxo|roxa", pink="rosa", brown="marrom", black="preto|preta",
    white="branco|branca")
_PT_SIZES = forms("m|f", small="pequeno|pequena", large="grande")
_PT_ARTICLES = {"m": "um", "f": "uma"}
_PT_POSITIONS = {
    "left": "à esquerda", "right": "à direita", "top": "em cima",
    "bottom": "embaixo", "centre": "no centro",
}


def _size_first_romance_shapes(scene: Scene, nouns, articles, sizes, colours,
                               positions, conjunction: str) -> str:
  def phrase(s: SceneShape) -> str:
    noun, gender = nouns[s.shape]
    return (f"{articles[gender]} {sizes[s.size][gender]} {noun} "
            f"{colours[s.colour][gender]} {positions[s.position]}")
  return f" {conjunction} ".join(phrase(s) for s in scene.shapes)


def french(scene: Scene) -> tuple[str, ...]:
  """French captions."""
  things = _size_first_romance_shapes(scene, _FR_NOUNS, _FR_ARTICLES,
                                      _FR_SIZES, _FR_COLOURS, _FR_POSITIONS,
                                      "et")
  bg = _FR_COLOURS[scene.background.colour]["m"]
  return (
      f"{capitalised(things)} sur un fond {bg}.",
      f"Sur un fond {bg}, on voit {things}.",
      f"Une image montrant {things} sur fond {bg}.",
  )


def italian(scene: Scene) -> tuple[str, ...]:
  """Italian captions."""
  things = _size_first_romance_shapes(scene, _IT_NOUNS, _IT_ARTICLES,
                                      _IT_SIZES, _IT_COLOURS, _IT_POSITIONS,
                                      "e")
  bg = _IT_COLOURS[scene.background.colour]["m"]
  there_is = by_count(scene, "c'è", "ci sono")
  return (
      f"{capitalised(things)} su uno sfondo {bg}.",
      f"Su uno sfondo {bg} {there_is} {things}.",
      f"Un'immagine con {things} su sfondo {bg}.",
  )


def portuguese(scene: Scene) -> tuple[str, ...]:
  """Portuguese (Brazilian) captions."""
  things = _size_first_romance_shapes(scene, _PT_NOUNS, _PT_ARTICLES,
                                      _PT_SIZES, _PT_COLOURS, _PT_POSITIONS,
                                      "e")
  bg = _PT_COLOURS[scene.background.colour]["m"]
  return (
      f"{capitalised(things)} sobre um fundo {bg}.",
      f"Sobre um fundo {bg}, há {things}.",
      f"Uma imagem com {things} em fundo {bg}.",
  )


# Spanish, Romanian: article, noun, colour, size -------------------------------

_ES_NOUNS = {
    "circle": ("círculo", "m"), "square": ("cuadrado", "m"),
    "triangle": ("triángulo", "m"), "star": ("estrella", "f"),
    "heart": ("corazón", "m"), "moon": ("luna", "f"),
}
_ES_COLOURS = forms(
    "m|f", red="rojo|roja", orange="naranja", yellow="amarillo|amarilla",
    green="verde", blue="azul", purple="morado|morada", pink="rosa",
    brown="marrón", black="negro|negra", white="blanco|blanca")
_ES_SIZES = forms("m|f", small="pequeño|pequeña", large="grande")
_ES_ARTICLES = {"m": "un", "f": "una"}
_ES_POSITIONS = {
    "left": "a la izquierda", "right": "a la derecha", "top": "arriba",
    "bottom": "abajo", "centre": "en el centro",
}

# Romanian neuters take masculine adjectives in the singular.
_RO_NOUNS = {
    "circle": ("cerc", "m"), "square": ("pătrat", "m"),
    "triangle": ("triunghi", "m"), "star": ("stea", "f"),
    "heart": ("inimă", "f"), "moon": ("lună", "f"),
}
_RO_COLOURS = forms(
    "m|f", red="roșu|roșie", orange="portocaliu|portocalie",
    yellow="galben|galbenă", green="verde", blue="albastru|albastră",
    purple="mov", pink="roz", brown="maro", black="negru|neagră",
    white="alb|albă")
_RO_SIZES = forms("m|f", small="mic|mică", large="mare")
_RO_ARTICLES = {"m": "un", "f": "o"}
_RO_POSITIONS = {
    "left": "în stânga", "right": "în dreapta", "top": "sus",
    "bottom": "jos", "centre": "în centru",
}


def _noun_first_romance_shapes(scene: Scene, nouns, articles, sizes, colours,
                               positions, conjunction: str) -> str:
  def phrase(s: SceneShape) -> str:
    noun, gender = nouns[s.shape]
    return (f"{articles[gender]} {noun} {colours[s.colour][gender]} "
            f"{sizes[s.size][gender]} {positions[s.position]}")
  return f" {conjunction} ".join(phrase(s) for s in scene.shapes)


def spanish(scene: Scene) -> tuple[str, ...]:
  """Spanish captions."""
  things = _noun_first_romance_shapes(scene, _ES_NOUNS, _ES_ARTICLES,
                                      _ES_SIZES, _ES_COLOURS, _ES_POSITIONS,
                                      "y")
  bg = _ES_COLOURS[scene.background.colour]["m"]
  return (
      f"{capitalised(things)} sobre un fondo {bg}.",
      f"Sobre un fondo {bg} hay {things}.",
      f"Una imagen con {things} sobre fondo {bg}.",
  )


def romanian(scene: Scene) -> tuple[str, ...]:
  """Romanian captions."""
  things = _noun_first_romance_shapes(scene, _RO_NOUNS, _RO_ARTICLES,
                                      _RO_SIZES, _RO_COLOURS, _RO_POSITIONS,
                                      "și")
  bg = _RO_COLOURS[scene.background.colour]["m"]
  return (
      f"{capitalised(things)} pe un fundal {bg}.",
      f"Pe un fundal {bg} se află {things}.",
      f"O imagine cu {things} pe fundal {bg}.",
  )


# Czech, Polish, Croatian, Russian, Ukrainian: case and gender -----------------

_CS_NOUNS = {
    "circle": ("kruh", "m"), "square": ("čtverec", "m"),
    "triangle": ("trojúhelník", "m"), "star": ("hvězda", "f"),
    "heart": ("srdce", "n"), "moon": ("měsíc", "m"),
}
# Hard adjectives: nominative -ý/-á/-é; the background ("na ... pozadí",
# neuter locative) takes -ém.
_CS_STEMS = {
    "red": "červen", "orange": "oranžov", "yellow": "žlut", "green": "zelen",
    "blue": "modr", "purple": "fialov", "pink": "růžov", "brown": "hněd",
    "black": "čern", "white": "bíl", "small": "mal", "large": "velk",
}
_CS_ENDINGS = {"m": "ý", "f": "á", "n": "é"}
_CS_POSITIONS = {
    "left": "vlevo", "right": "vpravo", "top": "nahoře", "bottom": "dole",
    "centre": "uprostřed",
}


def czech(scene: Scene) -> tuple[str, ...]:
  """Czech captions."""
  def phrase(s: SceneShape) -> str:
    noun, gender = _CS_NOUNS[s.shape]
    ending = _CS_ENDINGS[gender]
    return (f"{_CS_STEMS[s.size]}{ending} {_CS_STEMS[s.colour]}{ending} "
            f"{noun} {_CS_POSITIONS[s.position]}")
  things = " a ".join(phrase(s) for s in scene.shapes)
  bg = f"na {_CS_STEMS[scene.background.colour]}ém pozadí"
  is_ = by_count(scene, "je", "jsou")
  return (
      f"{capitalised(things)} {bg}.",
      f"{capitalised(bg)} {is_} {things}.",
      f"Na obrázku {is_} {things} {bg}.",
  )


_PL_NOUNS = {
    "circle": ("koło", "n"), "square": ("kwadrat", "m"),
    "triangle": ("trójkąt", "m"), "star": ("gwiazda", "f"),
    "heart": ("serce", "n"), "moon": ("księżyc", "m"),
}
# Only feminine nouns change in the accusative here.
_PL_ACCUSATIVE_NOUNS = {"gwiazda": "gwiazdę"}
_PL_STEMS = {
    "red": "czerwon", "orange": "pomarańczow", "yellow": "żółt",
    "green": "zielon", "blue": "niebiesk", "purple": "fioletow",
    "pink": "różow", "brown": "brązow", "black": "czarn", "white": "biał",
    "small": "mał", "large": "duż",
}
_PL_ENDINGS = {"m": "y", "f": "a", "n": "e", "acc f": "ą", "loc n": "ym"}
# After k and g, y becomes i and e becomes ie (niebieski, niebieskie).
_PL_SOFTENED = {"y": "i", "e": "ie", "ym": "im"}
_PL_POSITIONS = {
    "left": "po lewej", "right": "po prawej", "top": "na górze",
    "bottom": "na dole", "centre": "na środku",
}


def _polish_adjective(word: str, gender: str, case: str = "") -> str:
  stem = _PL_STEMS[word]
  ending = agree(_PL_ENDINGS, gender, case)
  if stem[-1] in "kg":
    ending = _PL_SOFTENED.get(ending, ending)
  return stem + ending


def polish(scene: Scene) -> tuple[str, ...]:
  """Polish captions: nominative and accusative shapes, locative background."""
  def shapes(case: str) -> str:
    def phrase(s: SceneShape) -> str:
      noun, gender = _PL_NOUNS[s.shape]
      if case == "acc":
        noun = _PL_ACCUSATIVE_NOUNS.get(noun, noun)
      return (f"{_polish_adjective(s.size, gender, case)} "
              f"{_polish_adjective(s.colour, gender, case)} {noun} "
              f"{_PL_POSITIONS[s.position]}")
    return " i ".join(phrase(s) for s in scene.shapes)
  nominative = shapes("")
  bg = f"na {_polish_adjective(scene.background.colour, 'n', 'loc')} tle"
  located = by_count(scene, "znajduje się", "znajdują się")
  return (
      f"{capitalised(nominative)} {bg}.",
      f"{capitalised(bg)} {located} {nominative}.",
      f"Obrazek przedstawia {shapes('acc')} {bg}.",
  )


_HR_NOUNS = {
    "circle": ("krug", "m"), "square": ("kvadrat", "m"),
    "triangle": ("trokut", "m"), "star": ("zvijezda", "f"),
    "heart": ("srce", "n"), "moon": ("mjesec", "m"),
}
# Nominative m/f/n and the feminine locative of "na ... pozadini".
_HR_ADJECTIVES = forms(
    "m|f|n|loc f",
    red="crveni|crvena|crveno|crvenoj",
    orange="narančasti|narančasta|narančasto|narančastoj",
    yellow="žuti|žuta|žuto|žutoj", green="zeleni|zelena|zeleno|zelenoj",
    blue="plavi|plava|plavo|plavoj",
    purple="ljubičasti|ljubičasta|ljubičasto|ljubičastoj",
    pink="ružičasti|ružičasta|ružičasto|ružičastoj",
    brown="smeđi|smeđa|smeđe|smeđoj", black="crni|crna|crno|crnoj",
    white="bijeli|bijela|bijelo|bijeloj",
    small="mali|mala|malo|maloj", large="veliki|velika|veliko|velikoj")
_HR_POSITIONS = {
    "left": "lijevo", "right": "desno", "top": "gore", "bottom": "dolje",
    "centre": "u sredini",
}


def croatian(scene: Scene) -> tuple[str, ...]:
  """Croatian captions."""
  def phrase(s: SceneShape) -> str:
    noun, gender = _HR_NOUNS[s.shape]
    return (f"{_HR_ADJECTIVES[s.size][gender]} "
            f"{_HR_ADJECTIVES[s.colour][gender]} {noun} "
            f"{_HR_POSITIONS[s.position]}")
  things = " i ".join(phrase(s) for s in scene.shapes)
  bg = f"na {_HR_ADJECTIVES[scene.background.colour]['loc f']} pozadini"
  return (
      f"{capitalised(things)} {bg}.",
      f"{capitalised(bg)} {by_count(scene, 'nalazi se', 'nalaze se')} "
      f"{things}.",
      f"Na slici {by_count(scene, 'je', 'su')} {things} {bg}.",
  )


_RU_NOUNS = {
    "circle": ("круг", "m"), "square": ("квадрат", "m"),
    "triangle": ("треугольник", "m"), "star": ("звезда", "f"),
    "heart": ("сердце", "n"), "moon": ("луна", "f"),
}
# Nominative m/f/n and the masculine prepositional of "на ... фоне".
_RU_ADJECTIVES = forms(
    "m|f|n|loc m",
    red="красный|красная|красное|красном",
    orange="оранжевый|оранжевая|оранжевое|оранжевом",
    yellow="жёлтый|жёлтая|жёлтое|жёлтом",
    green="зелёный|зелёная|зелёное|зелёном",
    blue="синий|синяя|синее|синем",
    purple="фиолетовый|фиолетовая|фиолетовое|фиолетовом",
    pink="розовый|розовая|розовое|розовом",
    brown="коричневый|коричневая|коричневое|коричневом",
    black="чёрный|чёрная|чёрное|чёрном", white="белый|белая|белое|белом",
    small="маленький|маленькая|маленькое|маленьком",
    large="большой|большая|большое|большом")
_RU_DEPICTED = {"m": "изображён", "f": "изображена", "n": "изображено"}
_RU_POSITIONS = {
    "left": "слева", "right": "справа", "top": "сверху", "bottom": "снизу",
    "centre": "в центре",
}


def russian(scene: Scene) -> tuple[str, ...]:
  """Russian captions; the participle agrees with the shape (or is plural)."""
  def phrase(s: SceneShape) -> str:
    noun, gender = _RU_NOUNS[s.shape]
    return (f"{_RU_ADJECTIVES[s.size][gender]} "
            f"{_RU_ADJECTIVES[s.colour][gender]} {noun} "
            f"{_RU_POSITIONS[s.position]}")
  things = " и ".join(phrase(s) for s in scene.shapes)
  bg = f"на {_RU_ADJECTIVES[scene.background.colour]['loc m']} фоне"
  depicted = by_count(scene, _RU_DEPICTED[_RU_NOUNS[scene.shapes[0].shape][1]],
                      "изображены")
  return (
      f"{capitalised(things)} {bg}.",
      f"{capitalised(bg)} {depicted} {things}.",
      f"На картинке {things} {bg}.",
  )


_UK_NOUNS = {
    "circle": ("коло", "n"), "square": ("квадрат", "m"),
    "triangle": ("трикутник", "m"), "star": ("зірка", "f"),
    "heart": ("серце", "n"), "moon": ("місяць", "m"),
}
# Nominative m/f/n and the neuter locative of "на ... тлі".
_UK_ADJECTIVES = forms(
    "m|f|n|loc n",
    red="червоний|червона|червоне|червоному",
    orange="помаранчевий|помаранчева|помаранчеве|помаранчевому",
    yellow="жовтий|жовта|жовте|жовтому",
    green="зелений|зелена|зелене|зеленому",
    blue="синій|синя|синє|синьому",
    purple="фіолетовий|фіолетова|фіолетове|фіолетовому",
    pink="рожевий|рожева|рожеве|рожевому",
    brown="коричневий|коричнева|коричневе|коричневому",
    black="чорний|чорна|чорне|чорному", white="білий|біла|біле|білому",
    small="маленький|маленька|маленьке|маленькому",
    large="великий|велика|велике|великому")
_UK_POSITIONS = {
    "left": "ліворуч", "right": "праворуч", "top": "угорі",
    "bottom": "унизу", "centre": "у центрі",
}


def ukrainian(scene: Scene) -> tuple[str, ...]:
  """Ukrainian captions."""
  def phrase(s: SceneShape) -> str:
    noun, gender = _UK_NOUNS[s.shape]
    return (f"{_UK_ADJECTIVES[s.size][gender]} "
            f"{_UK_ADJECTIVES[s.colour][gender]} {noun} "
            f"{_UK_POSITIONS[s.position]}")
  things = " і ".join(phrase(s) for s in scene.shapes)
  bg = f"на {_UK_ADJECTIVES[scene.background.colour]['loc n']} тлі"
  return (
      f"{capitalised(things)} {bg}.",
      f"{capitalised(bg)} є {things}.",
      f"На малюнку {things} {bg}.",
  )


# Greek ------------------------------------------------------------------------

_EL_NOUNS = {
    "circle": ("κύκλος", "m"), "square": ("τετράγωνο", "n"),
    "triangle": ("τρίγωνο", "n"), "star": ("αστέρι", "n"),
    "heart": ("καρδιά", "f"), "moon": ("φεγγάρι", "n"),
}
_EL_ACCUSATIVE_NOUNS = {"κύκλος": "κύκλο"}
# Nominative m/f/n; only the masculine accusative differs from them.
_EL_ADJECTIVES = forms(
    "m|f|n|acc m",
    red="κόκκινος|κόκκινη|κόκκινο|κόκκινο", orange="πορτοκαλί",
    yellow="κίτρινος|κίτρινη|κίτρινο|κίτρινο",
    green="πράσινος|πράσινη|πράσινο|πράσινο", blue="μπλε", purple="μωβ",
    pink="ροζ", brown="καφέ", black="μαύρος|μαύρη|μαύρο|μαύρο",
    white="άσπρος|άσπρη|άσπρο|άσπρο",
    small="μικρός|μικρή|μικρό|μικρό", large="μεγάλος|μεγάλη|μεγάλο|μεγάλο")
_EL_ARTICLES = {"m": "ένας", "f": "μια", "n": "ένα", "acc m": "έναν"}
_EL_POSITIONS = {
    "left": "αριστερά", "right": "δεξιά", "top": "πάνω", "bottom": "κάτω",
    "centre": "στο κέντρο",
}


def greek(scene: Scene) -> tuple[str, ...]:
  """Greek captions: nominative, and accusative after "με"."""
  def shapes(case: str) -> str:
    def phrase(s: SceneShape) -> str:
      noun, gender = _EL_NOUNS[s.shape]
      if case == "acc":
        noun = _EL_ACCUSATIVE_NOUNS.get(noun, noun)
      return (f"{agree(_EL_ARTICLES, gender, case)} "
              f"{agree(_EL_ADJECTIVES[s.size], gender, case)} "
              f"{agree(_EL_ADJECTIVES[s.colour], gender, case)} {noun} "
              f"{_EL_POSITIONS[s.position]}")
    return " και ".join(phrase(s) for s in scene.shapes)
  nominative = shapes("")
  # "φόντο" is neuter; its accusative equals the nominative.
  bg = f"σε {_EL_ADJECTIVES[scene.background.colour]['n']} φόντο"
  exists = by_count(scene, "υπάρχει", "υπάρχουν")
  return (
      f"{capitalised(nominative)} {bg}.",
      f"{capitalised(bg)} {exists} {nominative}.",
      f"Μια εικόνα με {shapes('acc')} {bg}.",
  )


# Finnish, Hungarian -----------------------------------------------------------

_FI_NOUNS = {
    "circle": "ympyrä", "square": "neliö", "triangle": "kolmio",
    "star": "tähti", "heart": "sydän", "moon": "kuu",
}
# Nominative, and the adessive of "... taustalla" (on a ... background).
_FI_COLOURS = forms(
    "nom|ade", red="punainen|punaisella", orange="oranssi|oranssilla",
    yellow="keltainen|keltaisella", green="vihreä|vihreällä",
    blue="sininen|sinisellä", purple="violetti|violetilla",
    pink="vaaleanpunainen|vaaleanpunaisella", brown="ruskea|ruskealla",
    black="musta|mustalla", white="valkoinen|valkoisella")
_FI_SIZES = {"small": "pieni", "large": "suuri"}
_FI_POSITIONS = {
    "left": "vasemmalla", "right": "oikealla", "top": "ylhäällä",
    "bottom": "alhaalla", "centre": "keskellä",
}


def finnish(scene: Scene) -> tuple[str, ...]:
  """Finnish captions: nominative shapes, adessive background."""
  things = " ja ".join(
      f"{_FI_SIZES[s.size]} {_FI_COLOURS[s.colour]['nom']} "
      f"{_FI_NOUNS[s.shape]} {_FI_POSITIONS[s.position]}"
      for s in scene.shapes)
  bg = f"{_FI_COLOURS[scene.background.colour]['ade']} taustalla"
  return (
      f"{capitalised(things)} {bg}.",
      f"Kuvassa on {things} {bg}.",
      f"{capitalised(bg)} näkyy {things}.",
  )


_HU_NOUNS = {
    "circle": "kör", "square": "négyzet", "triangle": "háromszög",
    "star": "csillag", "heart": "szív", "moon": "hold",
}
_HU_COLOURS = {
    "red": "piros", "orange": "narancssárga", "yellow": "sárga",
    "green": "zöld", "blue": "kék", "purple": "lila", "pink": "rózsaszín",
    "brown": "barna", "black": "fekete", "white": "fehér",
}
_HU_SIZES = {"small": "kis", "large": "nagy"}
_HU_POSITIONS = {
    "left": "a bal oldalon", "right": "a jobb oldalon", "top": "felül",
    "bottom": "alul", "centre": "középen",
}


def hungarian(scene: Scene) -> tuple[str, ...]:
  """Hungarian captions."""
  things = " és ".join(
      f"egy {_HU_SIZES[s.size]} {_HU_COLOURS[s.colour]} {_HU_NOUNS[s.shape]} "
      f"{_HU_POSITIONS[s.position]}" for s in scene.shapes)
  bg = _HU_COLOURS[scene.background.colour]
  return (
      f"{capitalised(things)} {bg} háttéren.",
      f"{capitalised(bg)} háttéren {things} látható.",
      f"A képen {things}, {bg} háttér előtt.",
  )


GRAMMARS: dict[str, Grammar] = {
    "cs": czech, "da": danish, "de": german, "el": greek, "en": english,
    "es": spanish, "fi": finnish, "fr": french, "hr": croatian,
    "hu": hungarian, "it": italian, "nl": dutch, "no": norwegian,
    "pl": polish, "pt": portuguese, "ro": romanian, "ru": russian,
    "sv": swedish, "uk": ukrainian,
}
