"""The report stage, one module per rule: :mod:`.tables` (long table, Table 1), :mod:`.figures` (retrieval,
subjects, time courses) and :mod:`.examples` (top-5 images, attention maps); :mod:`.common` is shared.
"""
