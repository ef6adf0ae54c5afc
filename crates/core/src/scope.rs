//! What an API token may do. `read` sees apps, deployments and logs; `deploy` also
//! deploys, rolls back, restarts and plans; `write` also changes apps, settings and
//! secrets; `admin` may do everything, including managing tokens and mounting host paths.
//! Every scope includes `read`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Deploy,
    Write,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Deploy, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The scopes of one token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Scopes(scopes.into_iter().collect())
    }

    /// The stored form, `read,deploy`; unknown words are an error naming them.
    pub fn parse_list(text: &str) -> Result<Scopes, String> {
        let mut scopes = BTreeSet::new();
        for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
            let scope = Scope::parse(word).ok_or_else(|| {
                format!("unknown scope {word:?} (scopes: read, deploy, write, admin)")
            })?;
            scopes.insert(scope);
        }
        Ok(Scopes(scopes))
    }

    /// Whether these scopes allow what `needed` guards.
    pub fn allows(&self, needed: Scope) -> bool {
        self.0.contains(&Scope::Admin)
            || self.0.contains(&needed)
            || (needed == Scope::Read && !self.0.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&words.join(","))
    }
}

/// What a panel user may do: `admin` everything, `deployer` read and deploy (deploy, roll
/// back, restart, plan), `viewer` only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Deployer,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Deployer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Deployer => "deployer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The scopes a user with this role acts with.
    pub fn scopes(self) -> Scopes {
        match self {
            Role::Admin => Scopes::of([Scope::Admin]),
            Role::Deployer => Scopes::of([Scope::Read, Scope::Deploy]),
            Role::Viewer => Scopes::of([Scope::Read]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_all_and_every_scope_reads() {
        let deploy = Scopes::parse_list("deploy").unwrap();
        assert!(deploy.allows(Scope::Read) && deploy.allows(Scope::Deploy));
        assert!(!deploy.allows(Scope::Write) && !deploy.allows(Scope::Admin));
        let write = Scopes::parse_list("write").unwrap();
        assert!(
            !write.allows(Scope::Deploy),
            "changing settings is not deploying"
        );
        let admin = Scopes::parse_list("admin").unwrap();
        assert!(Scope::ALL.into_iter().all(|s| admin.allows(s)));
        assert!(!Scopes::default().allows(Scope::Read));
        assert_eq!(
            Scopes::parse_list("read, deploy").unwrap().to_string(),
            "read,deploy"
        );
        assert!(Scopes::parse_list("root").unwrap_err().contains("root"));
    }

    #[test]
    fn roles_map_onto_scopes() {
        assert!(Role::Admin.scopes().allows(Scope::Admin));
        let deployer = Role::Deployer.scopes();
        assert!(deployer.allows(Scope::Deploy) && !deployer.allows(Scope::Write));
        let viewer = Role::Viewer.scopes();
        assert!(viewer.allows(Scope::Read) && !viewer.allows(Scope::Deploy));
        assert_eq!(Role::parse("deployer"), Some(Role::Deployer));
        assert_eq!(Role::parse("root"), None);
    }
}
