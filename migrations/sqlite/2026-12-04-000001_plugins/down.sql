DROP TABLE node_plugins;
DROP TABLE plugin_assignments;
DROP TABLE plugin_blobs;
