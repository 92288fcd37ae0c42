DROP TABLE fieldseal_imports;
