from pipelines import beam_logging

# Before any module of this package imports Beam, which logs on import.
beam_logging.drop_notices()
beam_logging.quiet_tensorflow()
