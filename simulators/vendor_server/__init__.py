"""A vendor pump server (BD Alaris Systems Manager, B. Braun Space, ICU Medical MedNet ...)
as the gateway sees it: an MLLP client sending IHE PCD-01/PCD-10/PCD-04 with fault modes."""
