"""The browser client for the items API: items.html, one self-contained page (docs/console.md, "The browser client").
provision writes a copy into outputs/ with the invoke URL filled in (crudstack/outputs.py)."""
