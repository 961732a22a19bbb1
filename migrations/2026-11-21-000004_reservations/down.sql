DROP TABLE reservation_requests;
