"""SentencePiece vocabularies: `vocabulary` loads and encodes, `train_vocab`
(a Beam command) samples captions and trains one.
"""
