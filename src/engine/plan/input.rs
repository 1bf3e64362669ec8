//! What the plan reads of a grant, behind a trait: the API type (owned, borrowed or shared) and the
//! controller's compact cache entry both give it, so the cache need not hold whole objects.
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{IamAccessGrant, IamAccessGrantSpec, READY, Reason};
use crate::engine::fingerprint::hash128;

/// What a grant's status says it holds in aws-auth: the plan keeps an invalid grant's last
/// applied entry by it (see [`super::last_applied`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reported<'a> {
    /// The Ready condition says Applied or Invalid (an entry was applied and may still be held).
    pub holds: bool,
    pub section: Option<&'a str>,
    pub canonical_arn: Option<&'a str>,
}

impl<'a> Reported<'a> {
    pub fn of(status: Option<&'a crate::api::IamAccessGrantStatus>) -> Self {
        let Some(s) = status else {
            return Reported::default();
        };
        Reported {
            holds: s.conditions.iter().any(|c| {
                c.type_ == READY
                    && (c.reason == Reason::Applied.as_str()
                        || c.reason == Reason::Invalid.as_str())
            }),
            section: s.section.as_deref(),
            canonical_arn: s.canonical_arn.as_deref(),
        }
    }
}

/// A grant as the plan takes it.
pub trait GrantRef: Sync {
    /// Its name (a manifest not created yet: its generateName).
    fn name(&self) -> &str;
    fn created(&self) -> Option<&Time>;
    fn spec(&self) -> &IamAccessGrantSpec;
    fn reported(&self) -> Reported<'_>;
    /// The version of the object this grant is, when it is one the API server handed out (a uid
    /// and a resourceVersion, hashed: the server gives every change a new resourceVersion). A
    /// grant's fingerprint is kept by it, so it is worked out once per version, not per pass.
    fn version(&self) -> Option<u128> {
        None
    }
    /// Its uid, once the API server gave it one.
    fn uid(&self) -> Option<&str> {
        None
    }
}

impl GrantRef for IamAccessGrant {
    fn name(&self) -> &str {
        self.metadata
            .name
            .as_deref()
            .or(self.metadata.generate_name.as_deref())
            .unwrap_or_default()
    }

    fn created(&self) -> Option<&Time> {
        self.metadata.creation_timestamp.as_ref()
    }

    fn spec(&self) -> &IamAccessGrantSpec {
        &self.spec
    }

    fn reported(&self) -> Reported<'_> {
        Reported::of(self.status.as_ref())
    }

    fn version(&self) -> Option<u128> {
        use std::hash::Hash;
        let m = &self.metadata;
        let (uid, rv) = (m.uid.as_deref()?, m.resource_version.as_deref()?);
        Some(hash128(|mut h| (uid, rv).hash(&mut h)))
    }

    fn uid(&self) -> Option<&str> {
        self.metadata.uid.as_deref()
    }
}

/// References and shared pointers to a grant are grants.
macro_rules! through_pointer {
    ($($pointer:ty),*) => {$(
        impl<T: GrantRef + Send + ?Sized> GrantRef for $pointer {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn created(&self) -> Option<&Time> {
                (**self).created()
            }
            fn spec(&self) -> &IamAccessGrantSpec {
                (**self).spec()
            }
            fn reported(&self) -> Reported<'_> {
                (**self).reported()
            }
            fn version(&self) -> Option<u128> {
                (**self).version()
            }
            fn uid(&self) -> Option<&str> {
                (**self).uid()
            }
        }
    )*};
}

through_pointer!(&T, Arc<T>);
