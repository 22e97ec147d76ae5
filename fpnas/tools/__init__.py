"""Commands a user runs beside search and train (show, space report, latency tables, export, timm rebuild,
configuration docs); imported by no other package."""
