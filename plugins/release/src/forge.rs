//! Forge releases: GitHub releases and assets, GitLab releases linking generic packages,
//! Gitea and Forgejo releases and attachments, over the `http` capability.
