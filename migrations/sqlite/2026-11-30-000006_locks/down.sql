DROP TABLE fieldseal_locks;
