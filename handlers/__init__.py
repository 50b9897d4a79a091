"""HTTP handlers, one module per tag of openapi.yaml.

Handlers read the request, call domain code and serialise the answer; nothing else. They import
`web` (request context, 501 stubs), `core.errors` and the area packages, never models, Docker or
subprocess (tests/test_layout.py). Operations a module does not define yet answer 501
(web.unbuilt).
"""
