DROP TABLE fieldseal_settings;
DROP TABLE fieldseal_audit_head;
DROP TABLE fieldseal_audit;
