"""Click-to-segment annotator. The document model (`annotator.document`), COCO I/O (`annotator.coco_io`) and the
headless batch mode (`annotator.batch`) are plain Python; the Qt GUI lives in `annotator._qt` and is imported only
by the GUI entry point, so importing this package never needs a display."""
