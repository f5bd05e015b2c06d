"""The synthetic demo corpus: shape scenes captioned in the 36 XM3600 languages.

`demo.corpus` writes the corpus and a mini XM3600 set; `scenes` draws and
renders the images, `captions` and the `grammar_*` modules write the captions.
The package builds on pipelines and eval; none of them imports it.
"""
