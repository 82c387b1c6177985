//! Drupal's update status feed (`release-history/<project>/<api>.xml`), as Drupal.org
//! and Dropfort's Feature Server served it, from release records.
