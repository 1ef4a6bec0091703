"""The evaluate stage: retrieval on the test sets (:mod:`.retrieval`) and over time (:mod:`.timeresolved`)."""
