"""The plugins shipped with encoder-recipes: built-in components and the ja, fi and zh languages.

Each is loaded through the ``encoder_recipes`` entry-point group, exactly as an
outside plugin is. A plugin's ``plugin.py`` holds only ``@hookimpl`` functions;
the work lives in the modules beside it.
"""
