DROP TABLE pool_utilization;
DROP TABLE remediation_releases;
DROP TABLE remediation_budgets;
