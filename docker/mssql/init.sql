-- Sample source database for the compose stack: a small CRM with the SQL Server types the mirror handles.
-- Change tracking is deliberately NOT enabled here: the mirror enables it itself (database and tables) the first
-- time it mirrors a table, as it would on a customer's database. Idempotent: does nothing if `crm` exists.
IF DB_ID(N'crm') IS NOT NULL
BEGIN
  PRINT 'database crm already exists';
  SET NOEXEC ON;
END
GO
CREATE DATABASE [crm];
GO
USE [crm];
GO
CREATE SCHEMA [sales];
GO
CREATE TABLE [dbo].[customers] (
  [id] int IDENTITY(1,1) NOT NULL PRIMARY KEY,
  [code] char(8) NOT NULL,
  [name] nvarchar(200) NOT NULL,
  [email] varchar(320) NULL,
  [is_active] bit NOT NULL DEFAULT 1,
  [credit_limit] money NULL,
  [discount] decimal(5,4) NULL,
  [created_at] datetime2(7) NOT NULL DEFAULT SYSUTCDATETIME(),
  [last_login] datetimeoffset(7) NULL,
  [external_id] uniqueidentifier NOT NULL DEFAULT NEWID(),
  [notes] nvarchar(max) NULL,
  [row_version] rowversion
);
CREATE TABLE [sales].[orders] (
  [customer_id] int NOT NULL REFERENCES [dbo].[customers]([id]),
  [order_no] bigint NOT NULL,
  [ordered_on] date NOT NULL,
  [ship_time] time(7) NULL,
  [total] decimal(38,10) NOT NULL,
  [weight_kg] real NULL,
  [ratio] float NULL,
  [legacy_ts] datetime NULL,
  [legacy_small] smalldatetime NULL,
  [status] tinyint NOT NULL,
  [priority] smallint NOT NULL,
  [attachment] varbinary(max) NULL,
  [checksum] binary(16) NULL,
  [meta] xml NULL,
  [extra] sql_variant NULL,
  [region] hierarchyid NULL,
  [delivery_point] geography NULL,
  [floor_plan] geometry NULL,
  [old_text] text NULL,
  [old_ntext] ntext NULL,
  [small_amount] smallmoney NULL,
  [code] nchar(4) NULL,
  CONSTRAINT [PK_orders] PRIMARY KEY ([customer_id], [order_no])
);
-- No primary key: Change Tracking cannot track it, so the mirror reports it as skipped.
CREATE TABLE [dbo].[audit_log] ([at] datetime2 NOT NULL, [message] nvarchar(400) NOT NULL);
GO
INSERT INTO [dbo].[customers] ([code], [name], [email], [credit_limit], [discount], [last_login], [notes])
SELECT CONCAT('C', RIGHT(CONCAT('0000000', n), 7)),
       CONCAT(N'Customer ', n, N' – ', NCHAR(0x00E9 + n % 20)),
       CASE WHEN n % 7 = 0 THEN NULL ELSE CONCAT('customer', n, '@example.com') END,
       CAST(n * 1000 AS money) + $0.1234,
       CAST((n % 100) / 1000.0 AS decimal(5,4)),
       TODATETIMEOFFSET(DATEADD(minute, -n, SYSUTCDATETIME()), (n % 25 - 12) * 60),
       CASE WHEN n % 5 = 0 THEN CONCAT(N'line one', NCHAR(10), N'line two', NCHAR(9), N'tab') END
FROM (SELECT TOP (200) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS n FROM sys.all_objects) AS s;

INSERT INTO [sales].[orders] ([customer_id], [order_no], [ordered_on], [ship_time], [total], [weight_kg], [ratio],
  [legacy_ts], [legacy_small], [status], [priority], [attachment], [checksum], [meta], [extra], [region],
  [delivery_point], [floor_plan], [old_text], [old_ntext], [small_amount], [code])
SELECT c.[id], 1000000000000 + c.[id] * 10 + k.k, DATEADD(day, -c.[id], CAST('2024-06-30' AS date)),
  CAST(DATEADD(second, c.[id] * 37, CAST('08:00:00' AS time(7))) AS time(7)),
  CAST(c.[id] AS decimal(38,10)) * 1234567.0123456789 + k.k,
  CAST(c.[id] AS real) / 3, CAST(c.[id] AS float) / 7,
  DATEADD(millisecond, c.[id] * 3, CAST('2020-01-01' AS datetime)), CAST('2020-01-01 10:30' AS smalldatetime),
  k.k, -k.k, CAST(CONCAT('attachment ', c.[id]) AS varbinary(max)), HASHBYTES('MD5', CONCAT('row', c.[id], k.k)),
  CAST(CONCAT('<order id="', c.[id], '"><line qty="', k.k, '"/></order>') AS xml),
  CASE k.k WHEN 1 THEN CAST(c.[id] AS sql_variant) WHEN 2 THEN CAST(N'text' AS sql_variant) ELSE NULL END,
  hierarchyid::Parse(CONCAT('/', c.[id] % 5 + 1, '/', k.k, '/')),
  geography::Point(48.0 + c.[id] / 100.0, 2.0 + k.k / 10.0, 4326),
  geometry::STGeomFromText(CONCAT('POLYGON((0 0, ', c.[id], ' 0, ', c.[id], ' ', k.k, ', 0 0))'), 0),
  CONCAT('legacy text ', c.[id]), CONCAT(N'legacy ntext ', c.[id]), CAST(c.[id] AS smallmoney) / 7, N'é' + CAST(k.k AS nchar(1))
FROM [dbo].[customers] AS c CROSS JOIN (VALUES (1), (2), (3)) AS k(k);

INSERT INTO [dbo].[audit_log] VALUES (SYSUTCDATETIME(), N'sample database created');
GO
SET NOEXEC OFF;
GO
