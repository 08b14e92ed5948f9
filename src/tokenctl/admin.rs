//! `tokenctl principal …`, `tokenctl account …` and `tokenctl audit list`.

use super::args::{AccountCommand, AuditCommand, OutputFormat, PrincipalCommand, PrincipalKindArg};
use super::output::{
    Table, account_json, account_row, audit_json, audit_row, principal_json, principal_row,
    print_json,
};
use super::{CliError, Connection};

use crate::proto::{self, PrincipalKind};

/// The columns of a principal table.
const PRINCIPAL_COLUMNS: [&str; 7] = [
    "ID",
    "NAME",
    "KIND",
    "ACCOUNT",
    "PERMISSIONS",
    "DISABLED",
    "CREATED",
];

pub async fn principal(
    connection: &Connection,
    command: &PrincipalCommand,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut admin = connection.admin();
    let principal = match command {
        PrincipalCommand::Create {
            name,
            kind,
            permissions,
            account,
        } => {
            let kind = match kind {
                PrincipalKindArg::User => PrincipalKind::User,
                PrincipalKindArg::ServiceAccount => PrincipalKind::ServiceAccount,
            };
            let request = proto::CreatePrincipalRequest {
                account_id: account.clone().unwrap_or_default(),
                kind: kind.into(),
                display_name: name.clone(),
                permissions: permissions.clone(),
            };
            admin
                .create_principal(request)
                .await?
                .into_inner()
                .principal
                .unwrap_or_default()
        }
        PrincipalCommand::Get { id } => {
            let request = proto::GetPrincipalRequest { id: id.clone() };
            admin
                .get_principal(request)
                .await?
                .into_inner()
                .principal
                .unwrap_or_default()
        }
        PrincipalCommand::List { account, pages } => {
            let request = proto::ListPrincipalsRequest {
                account_id: account.clone().unwrap_or_default(),
                ..Default::default()
            };
            let listing = super::paging::collect("principals", pages, |page_token| {
                let mut admin = admin.clone();
                let request = proto::ListPrincipalsRequest {
                    page_token,
                    ..request.clone()
                };
                async move {
                    let page = admin.list_principals(request).await?.into_inner();
                    Ok((page.principals, page.next_page_token))
                }
            })
            .await?;
            listing.print(output, &PRINCIPAL_COLUMNS, principal_row, principal_json)?;
            return Ok(());
        }
        PrincipalCommand::Update {
            id,
            name,
            permissions,
            clear_permissions,
            disabled,
        } => {
            let mut values = proto::Principal {
                id: id.clone(),
                ..Default::default()
            };
            let mut paths = Vec::new();
            if let Some(name) = name {
                values.display_name = name.clone();
                paths.push("display_name".to_owned());
            }
            if !permissions.is_empty() || *clear_permissions {
                values.permissions = permissions.clone();
                paths.push("permissions".to_owned());
            }
            if let Some(disabled) = disabled {
                values.disabled = *disabled;
                paths.push("disabled".to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one option".into(),
                ));
            }
            let request = proto::UpdatePrincipalRequest {
                principal: Some(values),
                update_mask: Some(prost_types::FieldMask { paths }),
            };
            admin
                .update_principal(request)
                .await?
                .into_inner()
                .principal
                .unwrap_or_default()
        }
    };
    match output {
        OutputFormat::Json => print_json(&principal_json(&principal))?,
        OutputFormat::Table => {
            let mut table = Table::new(&PRINCIPAL_COLUMNS);
            table.row(principal_row(&principal));
            table.print()?;
        }
    }
    Ok(())
}

pub async fn account(
    connection: &Connection,
    command: &AccountCommand,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut admin = connection.admin();
    let account = match command {
        AccountCommand::Create { name } => {
            let request = proto::CreateAccountRequest {
                display_name: name.clone(),
            };
            admin.create_account(request).await?.into_inner().account
        }
        AccountCommand::Get { id } => {
            let request = proto::GetAccountRequest {
                id: id.clone().unwrap_or_default(),
            };
            admin.get_account(request).await?.into_inner().account
        }
        AccountCommand::ApiAccess { enabled, account } => {
            let request = proto::SetApiAccessRequest {
                account_id: account.clone().unwrap_or_default(),
                enabled: *enabled,
            };
            admin.set_api_access(request).await?.into_inner().account
        }
        AccountCommand::Policy { account } => {
            return super::policy::show(connection, account.as_deref(), output).await;
        }
        AccountCommand::SetPolicy(args) => {
            return super::policy::set(connection, args, output).await;
        }
    }
    .unwrap_or_default();
    match output {
        OutputFormat::Json => print_json(&account_json(&account))?,
        OutputFormat::Table => {
            let mut table = Table::new(&["ID", "NAME", "API ACCESS", "OPERATOR", "CREATED"]);
            table.row(account_row(&account));
            table.print()?;
        }
    }
    Ok(())
}

pub async fn audit(
    connection: &Connection,
    command: &AuditCommand,
    output: OutputFormat,
) -> Result<(), CliError> {
    let AuditCommand::List {
        account,
        target,
        actor,
        action,
        page_size,
        pages,
    } = command;
    let request = proto::ListAuditEventsRequest {
        page_size: *page_size,
        account_id: account.clone().unwrap_or_default(),
        target_id: target.clone().unwrap_or_default(),
        actor_id: actor.clone().unwrap_or_default(),
        action: action.clone().unwrap_or_default(),
        ..Default::default()
    };
    let admin = connection.admin();
    let listing = super::paging::collect("events", pages, |page_token| {
        let mut admin = admin.clone();
        let request = proto::ListAuditEventsRequest {
            page_token,
            ..request.clone()
        };
        async move {
            let page = admin.list_audit_events(request).await?.into_inner();
            Ok((page.events, page.next_page_token))
        }
    })
    .await?;
    listing.print(
        output,
        &["ID", "TIME", "ACTION", "TARGET", "ACTOR", "FROM", "DETAILS"],
        audit_row,
        audit_json,
    )?;
    Ok(())
}
