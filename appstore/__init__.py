"""App catalogs: the /appstore routes and installing by appStoreId, from catalogs an admin configures."""
