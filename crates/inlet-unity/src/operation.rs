//! What a Unity Catalog request is for: the privileges the catalog checks for it and the
//! words an error uses for it, so that a denial says what to grant.

/// What a request is for, so that errors name the privilege it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Lookup,
    Credentials,
    PathCredentials,
    Create,
    UpdateColumns,
}

impl Operation {
    /// The privileges Unity Catalog checks for this operation.
    pub fn privileges(self) -> &'static str {
        match self {
            Self::Lookup => "USE CATALOG on the catalog and USE SCHEMA on the schema",
            Self::Credentials => "USE CATALOG, USE SCHEMA, EXTERNAL USE SCHEMA on the schema, and SELECT and MODIFY on the table",
            Self::PathCredentials => "EXTERNAL USE LOCATION and CREATE EXTERNAL TABLE on the external location holding the path",
            Self::Create => "USE CATALOG, USE SCHEMA, CREATE TABLE and EXTERNAL USE SCHEMA on the schema, and CREATE EXTERNAL TABLE and EXTERNAL USE LOCATION on the external location",
            Self::UpdateColumns => "ownership of the table (or MANAGE on it)",
        }
    }

    /// What the request was denied, as "the permission to ..." ends in an error.
    pub(crate) fn action(self) -> &'static str {
        match self {
            Self::Lookup => "look up the table",
            Self::Credentials => "vend credentials to write the table",
            Self::PathCredentials => "vend credentials to create a table at the storage location",
            Self::Create => "register the table",
            Self::UpdateColumns => "update the table's columns",
        }
    }
}
