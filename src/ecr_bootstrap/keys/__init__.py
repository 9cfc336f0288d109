"""The access keys: the record on the IAM user (record, reader), the rules over it (rules, settle), and
the rotation that changes them."""
