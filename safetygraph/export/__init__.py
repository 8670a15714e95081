"""Export: files with a manifest (``files``), the configuration lock (``lock``) and the QA report (``qa``)."""
