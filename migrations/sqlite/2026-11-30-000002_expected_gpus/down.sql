DROP TABLE expected_gpus;
