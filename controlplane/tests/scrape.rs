//! The scraper against stub servers, and offline/online with a fake clock.
