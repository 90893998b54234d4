"""Data files shipped with central (the category table); a package so wheels include them."""
