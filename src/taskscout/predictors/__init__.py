"""Source-ranking predictors."""
