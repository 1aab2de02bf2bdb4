"""The `shapes` model: drawn scenes, the judge that reads them, and the script that trains both."""
