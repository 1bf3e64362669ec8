//! Phase 3: the grants claim their principals, oldest first, against each other and against
//! aws-auth as it is (conflicts, unreadable keys, entries someone else wrote, a broken history).
use super::*;

/// A grant that passed every check of this phase: its name, its candidate entry, whether its
/// entry is in aws-auth already (managed), and who holds it.
pub(super) struct Accepted<'o> {
    pub(super) name: &'o Arc<str>,
    pub(super) candidate: &'o Candidate,
    pub(super) in_aws_auth: bool,
    pub(super) holder: Holder,
}

/// What the claims decided.
pub(super) struct Claims<'o> {
    /// The refused grants' verdicts (the accepted ones get theirs from the budget).
    pub(super) verdicts: Vec<Verdict>,
    /// Each principal claimed, by the (oldest) grant that claimed it.
    pub(super) claimed: KeyMap<Keyed<'o>, &'o Arc<str>>,
    pub(super) accepted: Vec<Accepted<'o>>,
    /// Invalid grants' last applied entries, with the grant that holds each.
    pub(super) invalid_kept: Vec<(Section, Keyed<'o>, Holder)>,
    /// Managed entries of grants that wait (on an unreadable key, on the history): kept as they
    /// are, whatever they hold.
    pub(super) waiting: Vec<(Section, Keyed<'o>)>,
}

pub(super) fn claim<'o, G: GrantRef>(
    at: &Inputs,
    now: &Current,
    order: &[(&G, memo::GrantPrint)],
    owns: &'o [Arc<Own>],
) -> Claims<'o> {
    let mut claims = Claims {
        verdicts: Vec::with_capacity(order.len()),
        claimed: KeyMap::with_capacity_and_hasher(order.len(), Prehashed),
        accepted: Vec::with_capacity(order.len()),
        invalid_kept: Vec::new(),
        waiting: Vec::new(),
    };
    for ((g, _), own) in order.iter().zip(owns) {
        let name = &own.name;
        let c = match &own.decision {
            Decision::Refused(r) => {
                let verdict = refused(at, &mut claims, name, r, Holder::of(*g));
                claims.verdicts.push(verdict);
                continue;
            }
            Decision::Candidate(c) => c,
        };
        let key = c.key.borrowed();
        if let Some(winner) = claims.claimed.get(&key) {
            let message = format!(
                "{} is already granted by IamAccessGrant {winner}, which is older; delete one of the two",
                c.canonical
            );
            claims
                .verdicts
                .push(candidate_verdict(name, c, Reason::Conflict, &message));
            continue;
        }
        claims.claimed.insert(key, name);
        let in_aws_auth = now.managed.contains_key(&(c.section, key));
        match check(at, now, c, g.spec().adopt, in_aws_auth) {
            Ok(()) => claims.accepted.push(Accepted {
                name,
                candidate: c,
                in_aws_auth,
                holder: Holder::of(*g),
            }),
            Err(Refused {
                reason,
                message,
                wait,
            }) => {
                if wait && in_aws_auth {
                    claims.waiting.push((c.section, key));
                }
                claims
                    .verdicts
                    .push(candidate_verdict(name, c, reason, &message));
            }
        }
    }
    claims
}

/// A grant refused on its own: its verdict, and its last applied entry kept where the ownership
/// record names it the holder.
fn refused<'o>(
    at: &Inputs,
    claims: &mut Claims<'o>,
    name: &Arc<str>,
    r: &'o Refusal,
    holder: Holder,
) -> Verdict {
    let kept = r
        .keep
        .as_ref()
        .filter(|(section, key, _)| at.owned_before.may_keep(*section, &key.key, holder));
    match kept {
        Some((section, key, arn)) => {
            claims.invalid_kept.push((*section, key.borrowed(), holder));
            Verdict {
                grant: name.clone(),
                reason: r.reason,
                message: format!("{}{KEPT}", r.message).into(),
                section: Some(*section),
                canonical_arn: Some(arn.clone()),
            }
        }
        None => Verdict {
            grant: name.clone(),
            reason: r.reason,
            message: r.message.clone(),
            section: r.section,
            canonical_arn: r.canonical_arn.clone(),
        },
    }
}

/// Why a candidate cannot have its entry now; `wait`: its entry in aws-auth stays as it is.
struct Refused {
    reason: Reason,
    message: String,
    wait: bool,
}

/// The checks of a candidate against aws-auth as it is, in order.
fn check(
    at: &Inputs,
    now: &Current,
    c: &Candidate,
    adopt: bool,
    in_aws_auth: bool,
) -> Result<(), Refused> {
    let refuse = |reason, message: String, wait| {
        Err(Refused {
            reason,
            message,
            wait,
        })
    };
    let read = &at.prepared.read;
    if let Some(f) = read.first_blocking(c.section) {
        return refuse(
            Reason::AwsAuthUnreadable,
            format!("aws-auth {f}. This key is left untouched until it is fixed by hand"),
            false,
        );
    }
    if let Some((other, f)) = unreadable_holder(read, at.data, c, in_aws_auth) {
        return refuse(
            Reason::AwsAuthUnreadable,
            format!(
                "aws-auth {other} cannot be read exactly and may map {} (EKS looks in mapRoles, then mapUsers, whatever the entry's field): {f}. Nothing changes for this grant until that key is fixed by hand",
                c.canonical
            ),
            true,
        );
    }
    let unowned = now.unowned.get(&c.key.borrowed());
    if let Some(u) = unowned
        && !adopt
    {
        return refuse(
            Reason::Conflict,
            format!(
                "aws-auth {} line {} already maps {} and is not managed by aws-auth-operator (written by EKS, eksctl or by hand); set spec.adopt: true to take it over, or remove that entry",
                u.section, u.line, c.canonical
            ),
            false,
        );
    }
    // Adopting an entry takes over what it grants: the EKS node role's system:nodes, say.
    if let Some(u) = unowned
        && let Some(why) = policy::forbidden(u.entry, &c.canonical, at.config)
    {
        return refuse(
            Reason::Forbidden,
            format!(
                "adopt: true would take over aws-auth {} line {}, a privileged entry: {why}",
                u.section, u.line
            ),
            false,
        );
    }
    if let Some(why) = &at.config.history_unavailable
        && now.managed.get(&(c.section, c.key.borrowed())) != Some(&&c.entry)
    {
        return refuse(
            Reason::Pending,
            format!(
                "{why}: additions and changes wait until the history can be kept (removals proceed)"
            ),
            true,
        );
    }
    Ok(())
}

/// A candidate's verdict, its message cut to the limit.
pub(super) fn candidate_verdict(
    name: &Arc<str>,
    c: &Candidate,
    reason: Reason,
    message: &str,
) -> Verdict {
    Verdict {
        grant: name.clone(),
        reason,
        message: excerpt(message, MAX_MESSAGE_CHARS).into(),
        section: Some(c.section),
        canonical_arn: Some(c.canonical.clone()),
    }
}
