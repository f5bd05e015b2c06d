"""The project's language codes, and the other codes the same languages go by.

Records carry XM3600's codes (ISO 639-1 where there is one: `he`, `id`, `no`;
`fil` for Filipino). langdetect, lingua and older ISO tables write some of
them differently; `canonical` maps those to the project's.
"""

# Other codes for the project's languages -> the project's code.
ALIASES = {
    "zh-cn": "zh", "zh-tw": "zh",  # langdetect's Chinese profiles
    "tl": "fil",  # Tagalog, the standard Filipino is based on
    "nb": "no", "nn": "no",  # Norwegian Bokmal and Nynorsk
    "iw": "he", "in": "id",  # ISO 639-1 codes withdrawn in 1989
}


def canonical(code: str) -> str:
  """The project's code for `code` (lower-cased; aliases mapped)."""
  code = code.strip().lower()
  return ALIASES.get(code, code)
