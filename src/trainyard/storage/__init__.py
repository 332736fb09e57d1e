"""Files the server keeps: code snapshots (``snapshots``) and safe archive handling
(``archive``)."""
