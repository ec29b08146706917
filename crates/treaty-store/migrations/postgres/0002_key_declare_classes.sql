-- Which workload classes a key may declare (x-treaty-workload-class), one per line.
ALTER TABLE virtual_keys ADD COLUMN declare_classes TEXT;
