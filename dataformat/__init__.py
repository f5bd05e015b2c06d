"""The dataset format and the file layer: no Beam, no JAX, no project imports.

`files` reads and writes local paths and `gs://` URIs alike; `records`,
`shards` and `manifest` define what a dataset directory holds.
"""
