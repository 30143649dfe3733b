"""Articles: fetch, extract and store them."""
