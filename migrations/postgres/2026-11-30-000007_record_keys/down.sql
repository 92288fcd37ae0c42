DROP TABLE fieldseal_record_keys;
