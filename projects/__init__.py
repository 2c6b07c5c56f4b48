"""Research projects built on feature-lens; each subpackage is one project with its own README and tests."""
